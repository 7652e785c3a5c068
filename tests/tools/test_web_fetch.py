"""web_fetch and the safe fetcher: happy paths on the local fake, SSRF refusals, caps."""

from __future__ import annotations

import ipaddress

import pytest

from loom.settings import Settings
from loom.tools.registry import ToolRegistry
from loom.tools.safe_http import (
    AddressCheck,
    FetchRefused,
    IPAddress,
    Resolver,
    SafeFetcher,
    address_category,
    default_address_check,
    system_resolver,
)
from loom.tools.web_fetch import WebFetchConfig, build_web_fetch_tool
from tests.fakes.tool_apis import BIG_SIZE, FakeToolApis

from .helpers import build, call

# --- happy paths (fetch_allow_private=True: the fake lives on 127.0.0.1) ----------------------


async def test_fetch_html_page(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    message = await call(build(registry, settings, "web_fetch"), url=f"{fake.base_url}/page.html")
    text = str(message.content)
    assert message.status == "success"
    assert text.startswith(f"URL: {fake.base_url}/page.html\nTitle: Loom test page\n")
    assert "Weaving agents" in text
    assert "Loom runs LangGraph agents & keeps their threads." in text
    assert "First point\n" in text and "Second point" in text
    for hidden in (
        "secretScript",
        "do not show",
        "secret-style",
        "also hidden",
        "enable javascript",
    ):
        assert hidden not in text


async def test_fetch_plain_text_and_binary(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    tool = build(registry, settings, "Web fetch")
    assert "just some plain text" in str(
        (await call(tool, url=f"{fake.base_url}/plain.txt")).content
    )
    message = await call(tool, url=f"{fake.base_url}/image.png")
    assert message.status == "error"
    assert "image/png" in str(message.content) and "not a text document" in str(message.content)


async def test_fetch_follows_redirects(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    tool = build(registry, settings, "web_fetch")
    message = await call(tool, url=f"{fake.base_url}/redirect?to=/page.html&status=301")
    assert "URL: " + f"{fake.base_url}/page.html" in str(message.content)
    assert "Weaving agents" in str(message.content)
    message = await call(tool, url=f"{fake.base_url}/redirect-chain?n=5")
    assert "end of chain" in str(message.content)


async def test_too_many_redirects(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    tool = build(registry, settings, "web_fetch")
    message = await call(tool, url=f"{fake.base_url}/redirect-chain?n=6")
    assert message.status == "error"
    assert "refused: too many redirects (more than 5)" in str(message.content)
    assert len(fake.requests_to("/redirect-chain")) == 6  # stopped, did not request a 7th


async def test_size_cap_truncates(fake: FakeToolApis) -> None:
    settings = fake.settings(fetch_max_bytes=4096)
    result = await SafeFetcher(settings).fetch(f"{fake.base_url}/big")
    assert result.truncated
    assert len(result.body) == 4096
    assert BIG_SIZE > 4096
    tool = build_web_fetch_tool(SafeFetcher(settings), WebFetchConfig(max_chars=50_000), 5.0)
    text = str(await tool.ainvoke({"url": f"{fake.base_url}/big"}))
    assert "Note: the page was cut at 4096 bytes" in text
    assert len(text) < 4096 + 200


async def test_max_chars_caps_model_text(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    tool = build(registry, settings, {"type": "web_fetch", "config": {"max_chars": 500}})
    text = str(await tool.ainvoke({"url": f"{fake.base_url}/big"}))
    assert len(text) <= 500
    assert text.endswith("[... truncated]")


async def test_slow_page_times_out(registry: ToolRegistry, fake: FakeToolApis) -> None:
    settings = fake.settings(tool_timeout_seconds=0.3)
    message = await call(
        build(registry, settings, "web_fetch"), url=f"{fake.base_url}/slow?seconds=2"
    )
    assert message.status == "error"
    assert "web_fetch timed out after 0.3 seconds" in str(message.content)


async def test_http_error_status(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis
) -> None:
    message = await call(build(registry, settings, "web_fetch"), url=f"{fake.base_url}/missing")
    assert message.status == "error"
    assert "answered HTTP 404" in str(message.content)


def test_config_validation(registry: ToolRegistry) -> None:
    spec = registry.get("web_fetch")
    assert spec.validate_config({"max_chars": 1000}).max_chars == 1000
    for bad in ({"max_chars": 10}, {"follow_redirects": False}):
        with pytest.raises(ValueError):
            spec.validate_config(bad)


# --- refusals (fetch_allow_private=False, the default) -----------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "refused: 127.0.0.1 is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data",
            "refused: 169.254.169.254 is a link-local address",
        ),
        ("http://localhost/", "refused: localhost resolves to 127.0.0.1, a loopback address"),
        (
            "http://[::ffff:127.0.0.1]/",
            "refused: ::ffff:127.0.0.1 is an IPv4-mapped form of 127.0.0.1, a loopback address",
        ),
        ("http://2130706433/", "refused: 2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "refused: 0x7f000001 resolves to 127.0.0.1, a loopback address"),
        ("http://127.1:8080/", "refused: 127.1 resolves to 127.0.0.1, a loopback address"),
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
        ("http://192.168.1.1/", "refused: 192.168.1.1 is a private address"),
        ("http://172.16.5.4/", "refused: 172.16.5.4 is a private address"),
        ("http://0.0.0.0/", "refused: 0.0.0.0 is an unspecified address"),
        ("http://[::1]/", "refused: ::1 is a loopback address"),
        ("http://[fe80::1]/", "refused: fe80::1 is a link-local address"),
        ("http://[fd00::1]/", "refused: fd00::1 is a private address"),
        ("http://224.0.0.1/", "refused: 224.0.0.1 is a multicast address"),
        ("file:///etc/passwd", "refused: only http and https URLs may be fetched, not file"),
        ("ftp://example.com/x", "refused: only http and https URLs may be fetched, not ftp"),
        ("http://0177.0.0.1/", "refused: http://0177.0.0.1/ is not a valid URL"),
        ("not a url", "refused: only http and https URLs may be fetched"),
    ],
)
async def test_ssrf_refusals(
    registry: ToolRegistry, fake: FakeToolApis, url: str, reason: str
) -> None:
    settings = fake.settings(fetch_allow_private=False)
    fake.reset()
    message = await call(build(registry, settings, "web_fetch"), url=url)
    assert message.status == "error"
    assert str(message.content).startswith(f"Error: {reason}")


async def test_local_fake_itself_is_refused(registry: ToolRegistry, fake: FakeToolApis) -> None:
    settings = fake.settings(fetch_allow_private=False)
    fake.reset()
    message = await call(build(registry, settings, "web_fetch"), url=f"{fake.base_url}/page.html")
    assert "refused: 127.0.0.1 is a loopback address" in str(message.content)
    assert fake.requests == []  # nothing was sent


def _only(ip: str, port: int) -> AddressCheck:
    """An address policy allowing exactly one (address, port), else the default policy.

    Stands in for "this host is public" so a redirect from an allowed first hop can be tested
    without internet access.
    """
    allowed = ipaddress.ip_address(ip)

    def check(address: IPAddress, p: int) -> str | None:
        if address == allowed and p == port:
            return None
        return default_address_check(address, p)

    return check


def _resolver(mapping: dict[str, str], calls: list[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        if host in mapping:
            return [ipaddress.ip_address(mapping[host])]
        return await system_resolver(host, port)

    return resolve


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://localhost:{other}/admin", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://127.0.0.1:{other}/admin", "127.0.0.1 is a loopback address"),
        ("http://[::1]:{port}/admin", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("gopher://public.example/", "only http and https URLs may be fetched, not gopher"),
    ],
)
async def test_redirect_to_internal_address_is_refused(
    fake: FakeToolApis, target: str, reason: str
) -> None:
    settings = fake.settings(fetch_allow_private=False)
    fake.reset()
    calls: list[str] = []
    fetcher = SafeFetcher(
        settings,
        resolver=_resolver({"public.example": "127.0.0.1"}, calls),
        address_check=_only("127.0.0.1", fake.port),
    )
    to = target.format(port=fake.port, other=fake.port + 1 if fake.port < 65535 else 1)
    url = f"http://public.example:{fake.port}/redirect?to={to}"
    with pytest.raises(FetchRefused) as info:
        await fetcher.fetch(url)
    assert str(info.value) == f"refused: {reason}"
    # The first hop was fetched (it is the "public" one); the target never was.
    assert [r.path for r in fake.requests] == ["/redirect"]


async def test_allowed_first_hop_and_pinned_connection(fake: FakeToolApis) -> None:
    settings = fake.settings(fetch_allow_private=False)
    calls: list[str] = []
    fetcher = SafeFetcher(
        settings,
        resolver=_resolver({"public.example": "127.0.0.1"}, calls),
        address_check=_only("127.0.0.1", fake.port),
    )
    result = await fetcher.fetch(f"http://public.example:{fake.port}/echo-host")
    # Connected to the vetted address, with the original name in the Host header.
    assert result.text == f"host=public.example:{fake.port}"
    assert result.url == f"http://public.example:{fake.port}/echo-host"
    assert calls == ["public.example"]  # resolved once: no second lookup to rebind


async def test_rebinding_cannot_swap_the_address(fake: FakeToolApis) -> None:
    """The name resolves to an allowed address, then (rebinding) to a forbidden one.

    The connection uses the address that was checked; there is no second lookup for an
    attacker's DNS to answer differently.
    """
    answers = iter(["127.0.0.1", "10.0.0.1"])
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address(next(answers))]

    settings = fake.settings(fetch_allow_private=False)
    fetcher = SafeFetcher(
        settings,
        resolver=rebinding,
        address_check=_only("127.0.0.1", fake.port),
    )
    result = await fetcher.fetch(f"http://rebind.example:{fake.port}/page.html")
    assert result.status_code == 200
    assert lookups == ["rebind.example"]


async def test_every_resolved_address_must_be_public(fake: FakeToolApis) -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.1.2.3")]

    fetcher = SafeFetcher(fake.settings(fetch_allow_private=False), resolver=mixed)
    with pytest.raises(FetchRefused, match=r"mixed\.example resolves to 10\.1\.2\.3, a private"):
        await fetcher.fetch("https://mixed.example/")


async def test_unresolvable_host(fake: FakeToolApis) -> None:
    async def nxdomain(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    fetcher = SafeFetcher(fake.settings(fetch_allow_private=False), resolver=nxdomain)
    with pytest.raises(Exception, match=r"could not resolve nowhere\.invalid"):
        await fetcher.fetch("http://nowhere.invalid/")


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("10.200.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.10", "a private address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
        ("0.0.0.0", "an unspecified address"),
        ("255.255.255.255", "a reserved address"),
        ("240.0.0.1", "a reserved address"),
        ("239.1.2.3", "a multicast address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("fe80::abcd", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("::ffff:169.254.169.254", "an IPv4-mapped form of 169.254.169.254, a link-local address"),
        ("::ffff:10.0.0.1", "an IPv4-mapped form of 10.0.0.1, a private address"),
        ("::127.0.0.1", "an IPv4-compatible form of 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254, a link-local address"),
        ("2002:7f00:1::", "a 6to4 form of 127.0.0.1, a loopback address"),
        ("2002:0a00:0001::", "a 6to4 form of 10.0.0.1, a private address"),
    ],
)
def test_address_categories(address: str, category: str | None) -> None:
    assert address_category(ipaddress.ip_address(address)) == category


def test_allow_private_setting_disables_checks(fake: FakeToolApis) -> None:
    assert fake.settings().fetch_allow_private is True
    assert Settings.model_fields["fetch_allow_private"].default is False
