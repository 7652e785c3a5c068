"""HTTPS through the pinned connection: SNI and certificate checks use the URL's host name.

A throwaway CA signs a certificate for ``public.example``; the fake serves it on 127.0.0.1.
The fetcher connects to the vetted IP yet verifies the certificate against the name, so a
certificate for another name is rejected.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loom.tools.safe_http import IPAddress, SafeFetcher, default_address_check
from tests.fakes.tool_apis import FakeToolApis


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_ca_and_cert(directory: Path, host: str) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Loom test CA"))
        .issuer_name(_name("Loom test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeToolApis, ssl.SSLContext]]:
    ca, cert, key = _write_ca_and_cert(tmp_path_factory.mktemp("tls"), "public.example")
    with FakeToolApis(ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        yield server, ssl.create_default_context(cafile=str(ca))


def _fetcher(server: FakeToolApis, context: ssl.SSLContext, names: dict[str, str]) -> SafeFetcher:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(names[host])]

    def only_the_fake(address: IPAddress, port: int) -> str | None:
        if address == ipaddress.ip_address("127.0.0.1") and port == server.port:
            return None
        return default_address_check(address, port)

    return SafeFetcher(
        server.settings(fetch_allow_private=False),
        resolver=resolve,
        address_check=only_the_fake,
        verify=context,
    )


async def test_https_pinned_with_sni(tls: tuple[FakeToolApis, ssl.SSLContext]) -> None:
    server, context = tls
    fetcher = _fetcher(server, context, {"public.example": "127.0.0.1"})
    result = await fetcher.fetch(f"https://public.example:{server.port}/echo-host")
    assert result.text == f"host=public.example:{server.port}"


async def test_https_certificate_for_another_name_is_rejected(
    tls: tuple[FakeToolApis, ssl.SSLContext],
) -> None:
    server, context = tls
    fetcher = _fetcher(server, context, {"other.example": "127.0.0.1"})
    with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
        await fetcher.fetch(f"https://other.example:{server.port}/echo-host")
