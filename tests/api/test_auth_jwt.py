"""JWT and OIDC authentication against real servers: what is accepted, what is 401.

Tokens are made with PyJWT (or by hand, for tokens PyJWT refuses to make); the OIDC provider
is a tiny JWKS server on a local socket that counts how often Loom fetches it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.conftest import LoomServer, make_settings

SECRET = "an-hs256-secret-that-is-long-enough-for-the-test"
ISSUER = "https://issuer.loom.test"
AUDIENCE = "loom-api"
IDP_ISSUER = "https://idp.loom.test"
CHATBOT = {"configurable": {"type": "chatbot"}}


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RS_KEY = _rsa_key()
OTHER_RS_KEY = _rsa_key()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "jwt-user",
        "iat": now,
        "exp": now + 3600,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def hs_token(secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), secret, algorithm="HS256")


def rs_token(key: rsa.RSAPrivateKey = RS_KEY, kid: str | None = None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(_claims(**overrides), key, algorithm="RS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to produce (``alg: none``, a PEM as HMAC secret)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    assert isinstance(body["detail"], str) and body["detail"]


def _create_assistant(server: LoomServer, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{server.url}/assistants",
        json={"name": f"a-{uuid.uuid4().hex[:6]}", "config": CHATBOT},
        headers=headers,
        timeout=30,
    )


def _whoami(server: LoomServer, token: str) -> str:
    response = _create_assistant(server, _bearer(token))
    assert response.status_code == 200, response.text
    return str(response.json()["user_id"])


# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hs_server(database_url: str) -> Iterator[LoomServer]:
    settings = make_settings(
        database_url,
        auth="jwt",
        jwt_secret=SECRET,
        jwt_algorithms=["HS256"],
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    with LoomServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def rs_server(database_url: str) -> Iterator[LoomServer]:
    settings = make_settings(
        database_url,
        auth="jwt",
        jwt_public_key=_public_pem(RS_KEY),
        jwt_algorithms=["RS256"],
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    with LoomServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def mixed_server(database_url: str) -> Iterator[LoomServer]:
    settings = make_settings(
        database_url,
        auth="jwt",
        jwt_secret=SECRET,
        jwt_public_key=_public_pem(RS_KEY),
        jwt_algorithms=["HS256", "RS256"],
    )
    with LoomServer(settings) as server:
        yield server


# --- JWT, HS256 ------------------------------------------------------------------------------


def test_valid_hs256_token_is_the_user(hs_server: LoomServer) -> None:
    token = hs_token(sub="user-from-sub")
    assert _whoami(hs_server, token) == "user-from-sub"
    listed = requests.get(f"{hs_server.url}/assistants", headers=_bearer(token), timeout=30)
    assert listed.status_code == 200
    assert [a["user_id"] for a in listed.json()] == ["user-from-sub"]
    # Another subject sees nothing of it.
    other = requests.get(
        f"{hs_server.url}/assistants", headers=_bearer(hs_token(sub="someone-else")), timeout=30
    )
    assert other.status_code == 200
    assert other.json() == []
    mode = requests.get(f"{hs_server.url}/auth/mode", timeout=30)
    assert mode.json() == {"mode": "jwt"}


def _bad_hs_tokens() -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": hs_token(exp=now - 3600, iat=now - 7200),
        "not yet valid": hs_token(nbf=now + 3600),
        "wrong audience": hs_token(aud="someone-elses-api"),
        "no audience": hs_token(aud=None),
        "wrong issuer": hs_token(iss="https://evil.test"),
        "no issuer": hs_token(iss=None),
        "bad signature": hs_token(secret="not-the-secret-not-the-secret-not-the"),
        "tampered payload": _tampered(hs_token(sub="victim")),
        "alg none": handmade_token({"alg": "none", "typ": "JWT"}, _claims(), None),
        "alg None": handmade_token({"alg": "None", "typ": "JWT"}, _claims(), None),
        "missing sub": hs_token(sub=None),
        "empty sub": hs_token(sub=""),
        "numeric sub": hs_token(sub=12345),
        "NUL in sub": hs_token(sub="a\x00b"),
        "unpaired surrogate in sub": hs_token(sub="a\ud800"),
        "sub too long": hs_token(sub="u" * 257),
        "missing exp": hs_token(exp=None),
        "RS256 on an HS-only server": rs_token(),
        "garbage": "garbage",
        "three garbage parts": "abc.def.ghi",
    }


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "attacker"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize("case", list(_bad_hs_tokens()))
def test_bad_hs256_tokens_are_401(hs_server: LoomServer, case: str) -> None:
    token = _bad_hs_tokens()[case]
    _assert_401(_create_assistant(hs_server, _bearer(token)))
    _assert_401(requests.get(f"{hs_server.url}/threads", headers=_bearer(token), timeout=30))


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
    ids=["missing", "empty", "scheme only", "scheme and space", "basic", "other scheme", "lower"],
)
def test_missing_or_malformed_authorization_header_is_401(
    hs_server: LoomServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = requests.get(f"{hs_server.url}/assistants", headers=headers, timeout=30)
    _assert_401(response)
    assert response.headers["www-authenticate"] == "Bearer"


def test_cookie_is_ignored_in_jwt_mode(hs_server: LoomServer) -> None:
    cookies = {"opengpts_user_id": "cookie-user"}
    only_cookie = requests.post(
        f"{hs_server.url}/assistants",
        json={"name": "x", "config": CHATBOT},
        cookies=cookies,
        timeout=30,
    )
    _assert_401(only_cookie)
    both = requests.post(
        f"{hs_server.url}/assistants",
        json={"name": "x", "config": CHATBOT},
        cookies=cookies,
        headers=_bearer(hs_token(sub="token-user")),
        timeout=30,
    )
    assert both.status_code == 200, both.text
    assert both.json()["user_id"] == "token-user"
    theirs = requests.get(
        f"{hs_server.url}/assistants",
        cookies=cookies,
        headers=_bearer(hs_token(sub="nobody")),
        timeout=30,
    )
    assert theirs.json() == []


def test_lowercase_bearer_scheme_is_accepted(hs_server: LoomServer) -> None:
    response = _create_assistant(hs_server, {"Authorization": f"bearer {hs_token(sub='lower')}"})
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "lower"


# --- JWT, RS256 ------------------------------------------------------------------------------


def test_valid_rs256_token_is_the_user(rs_server: LoomServer) -> None:
    assert _whoami(rs_server, rs_token(sub="rs-user")) == "rs-user"


@pytest.mark.parametrize(
    "case", ["other key", "hs256", "expired", "wrong issuer", "wrong audience", "missing sub"]
)
def test_bad_rs256_tokens_are_401(rs_server: LoomServer, case: str) -> None:
    now = int(time.time())
    token = {
        "other key": lambda: rs_token(OTHER_RS_KEY),
        # An HS256 token whose HMAC secret is the server's public key (the classic confusion).
        "hs256": lambda: handmade_token(
            {"alg": "HS256", "typ": "JWT"}, _claims(), _public_pem(RS_KEY).encode()
        ),
        "expired": lambda: rs_token(exp=now - 60, iat=now - 3600),
        "wrong issuer": lambda: rs_token(iss="https://evil.test"),
        "wrong audience": lambda: rs_token(aud="other"),
        "missing sub": lambda: rs_token(sub=None),
    }[case]()
    _assert_401(_create_assistant(rs_server, _bearer(token)))


# --- both families on one server -------------------------------------------------------------


def test_mixed_server_accepts_both_families(mixed_server: LoomServer) -> None:
    assert _whoami(mixed_server, hs_token(sub="hs-user", iss=None, aud=None)) == "hs-user"
    assert _whoami(mixed_server, rs_token(sub="rs-user", iss=None, aud=None)) == "rs-user"


@pytest.mark.parametrize("pem_form", ["as served", "stripped"])
def test_hs_rs_confusion_is_401(mixed_server: LoomServer, pem_form: str) -> None:
    # The hand-made tokens are real HS256 tokens: signed with the right secret, one is accepted.
    control = handmade_token(
        {"alg": "HS256", "typ": "JWT"}, _claims(sub="control", iss=None, aud=None), SECRET.encode()
    )
    assert _whoami(mixed_server, control) == "control"
    pem = _public_pem(RS_KEY)
    key = pem.encode() if pem_form == "as served" else pem.strip().encode()
    token = handmade_token(
        {"alg": "HS256", "typ": "JWT"}, _claims(sub="attacker", iss=None, aud=None), key
    )
    _assert_401(_create_assistant(mixed_server, _bearer(token)))
    _assert_401(requests.get(f"{mixed_server.url}/assistants", headers=_bearer(token), timeout=30))


# --- OIDC ------------------------------------------------------------------------------------


class Jwks:
    """A JWKS endpoint on a local socket that counts its requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        self._lock = threading.Lock()
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with jwks._lock:
                    jwks.hits += 1
                    body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def serve(self, *keys: tuple[str, rsa.RSAPrivateKey]) -> None:
        with self._lock:
            self.keys = [
                {**RSAAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": kid, "alg": "RS256"}
                for kid, k in keys
            ]

    def count(self) -> int:
        with self._lock:
            return self.hits

    def __enter__(self) -> Jwks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def oidc_token(key: rsa.RSAPrivateKey, kid: str, **overrides: Any) -> str:
    return rs_token(key, kid=kid, **{"iss": IDP_ISSUER, "aud": None, **overrides})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    with Jwks() as server:
        yield server


def _oidc_server(database_url: str, jwks: Jwks, refetch: float) -> LoomServer:
    return LoomServer(
        make_settings(
            database_url,
            auth="oidc",
            oidc_jwks_url=jwks.url,
            oidc_issuer=IDP_ISSUER,
            oidc_jwks_refetch_seconds=refetch,
        )
    )


def test_oidc_valid_token_and_unknown_kid_burst(database_url: str, jwks: Jwks) -> None:
    key = _rsa_key()
    jwks.serve(("key-1", key))
    with _oidc_server(database_url, jwks, refetch=3600) as server:
        assert jwks.count() == 0
        forged = oidc_token(_rsa_key(), "forged-kid", sub="intruder")

        def attempt(_: int) -> requests.Response:
            return _create_assistant(server, _bearer(forged))

        with ThreadPoolExecutor(5) as pool:
            burst = list(pool.map(attempt, range(5)))
        for response in burst:
            _assert_401(response)
            assert response.json() == {"detail": "The token was signed with an unknown key"}
        assert jwks.count() == 1  # one fetch for the whole burst

        for _ in range(5):  # and none for later ones inside the window
            _assert_401(_create_assistant(server, _bearer(forged)))
        assert jwks.count() == 1

        # The key fetched then verifies a real token without another fetch.
        assert _whoami(server, oidc_token(key, "key-1", sub="oidc-user")) == "oidc-user"
        assert jwks.count() == 1

        bad = {
            "known kid, other key": oidc_token(_rsa_key(), "key-1"),
            "wrong issuer": oidc_token(key, "key-1", iss="https://evil.test"),
            "no issuer": oidc_token(key, "key-1", iss=None),
            "expired": oidc_token(key, "key-1", exp=int(time.time()) - 60),
            "missing exp": oidc_token(key, "key-1", exp=None),
            "missing sub": oidc_token(key, "key-1", sub=None),
            "no kid": rs_token(key, iss=IDP_ISSUER, aud=None),
            "hs256 with kid": jwt.encode(
                _claims(iss=IDP_ISSUER, aud=None),
                SECRET,
                algorithm="HS256",
                headers={"kid": "key-1"},
            ),
            "alg none": handmade_token(
                {"alg": "none", "kid": "key-1"}, _claims(iss=IDP_ISSUER, aud=None), None
            ),
            "garbage": "garbage",
        }
        for case, token in bad.items():
            response = _create_assistant(server, _bearer(token))
            assert response.status_code == 401, (case, response.text)
            _assert_401(response)
        _assert_401(requests.get(f"{server.url}/assistants", timeout=30))
        _assert_401(
            requests.get(
                f"{server.url}/assistants", cookies={"opengpts_user_id": "oidc-user"}, timeout=30
            )
        )


def test_oidc_key_rotation(database_url: str, jwks: Jwks) -> None:
    old, new = _rsa_key(), _rsa_key()
    jwks.serve(("old", old))
    with _oidc_server(database_url, jwks, refetch=0) as server:
        assert _whoami(server, oidc_token(old, "old", sub="rotating")) == "rotating"
        assert jwks.count() == 1
        new_token = oidc_token(new, "new", sub="rotating")
        _assert_401(_create_assistant(server, _bearer(new_token)))  # not published yet

        jwks.serve(("new", new))
        assert _whoami(server, new_token) == "rotating"
        # The retired key is gone with the old key set.
        _assert_401(_create_assistant(server, _bearer(oidc_token(old, "old", sub="rotating"))))
        listed = requests.get(f"{server.url}/assistants", headers=_bearer(new_token), timeout=30)
        assert listed.status_code == 200
        assert [a["user_id"] for a in listed.json()] == ["rotating", "rotating"]
