"""Settings that refuse unsafe combinations, request limits, bad input, health, restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from loom.settings import Settings, load_settings
from tests.conftest import ROOT, LoomServer, Session, make_settings
from tests.fakes.openai_server import FakeOpenAI

LIMIT = 4096
TOO_LARGE = {"detail": f"Request body too large (limit {LIMIT} bytes)"}
CHATBOT = {"configurable": {"type": "chatbot"}}
LEAKS = ("Traceback", "psycopg", 'File "', "site-packages", "Internal server error")


# --- settings ----------------------------------------------------------------------------------


def test_production_refuses_cookie_auth() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(env="production", auth="cookie")
    assert "LOOM_AUTH=cookie" in str(info.value)
    assert "production" in str(info.value)


def test_production_accepts_jwt_with_a_key() -> None:
    settings = Settings(env="production", auth="jwt", jwt_secret="x" * 32)
    assert (settings.env, settings.auth) == ("production", "jwt")
    with pytest.raises(ValidationError, match="LOOM_JWT_SECRET or LOOM_JWT_PUBLIC_KEY"):
        Settings(env="production", auth="jwt")


def test_cookie_mode_listens_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """The development cookie trusts any client: by default only this machine can reach it."""
    for name in ("LOOM_HOST", "LOOM_AUTH", "LOOM_ENV"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings().host == "127.0.0.1"
    assert Settings(auth="cookie").host == "127.0.0.1"
    assert Settings(host="0.0.0.0").host == "0.0.0.0"
    monkeypatch.setenv("LOOM_HOST", "0.0.0.0")
    assert load_settings().host == "0.0.0.0"
    monkeypatch.delenv("LOOM_HOST")
    # The token modes authenticate every request: they listen on every interface.
    assert Settings(auth="jwt", jwt_secret="x" * 32).host == "0.0.0.0"
    assert Settings(auth="jwt", jwt_secret="x" * 32, host="127.0.0.2").host == "127.0.0.2"


OIDC = {"auth": "oidc", "oidc_jwks_url": "https://id.example/jwks"}


@pytest.mark.parametrize(
    "given",
    [{}, {"oidc_issuer": "https://id.example"}, {"jwt_audience": "loom"}],
    ids=["neither", "issuer only", "audience only"],
)
def test_production_oidc_needs_issuer_and_audience(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(env="production", **OIDC, **given)
    message = str(info.value)
    assert "LOOM_OIDC_ISSUER" in message and "LOOM_JWT_AUDIENCE" in message
    Settings(env="development", **OIDC, **given)  # development takes any


def test_production_oidc_with_issuer_and_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    both = {"oidc_issuer": "https://id.example", "jwt_audience": "loom"}
    settings = Settings(env="production", **OIDC, **both)
    assert (settings.oidc_issuer, settings.jwt_audience) == ("https://id.example", "loom")
    # LOOM_OIDC_AUDIENCE is another name of LOOM_JWT_AUDIENCE.
    monkeypatch.setenv("LOOM_OIDC_AUDIENCE", "loom-api")
    assert Settings(env="production", **OIDC, oidc_issuer="https://id.example").jwt_audience == (
        "loom-api"
    )


def test_production_refuses_short_hmac_secrets() -> None:
    for short in ("x" * 31, "secret", "é" * 15 + "x"):  # 31 bytes, 6, 31 (UTF-8)
        with pytest.raises(ValidationError, match="LOOM_JWT_SECRET must be at least 32 bytes"):
            Settings(env="production", auth="jwt", jwt_secret=short)
    for enough in ("x" * 32, "é" * 16):  # 32 bytes each
        assert Settings(env="production", auth="jwt", jwt_secret=enough).jwt_secret
    # Development takes a short one (tests, a local try-out).
    assert Settings(auth="jwt", jwt_secret="dev").jwt_secret


def _loom_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    env.update({"LOOM_DATA_DIR": str(tmp_path / "data"), "LOOM_PORT": "9"})
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"LOOM_ENV": "production"}, "LOOM_AUTH=cookie"),
        ({"LOOM_ENV": "production", "LOOM_AUTH": "cookie"}, "LOOM_AUTH=cookie"),
        ({"LOOM_ENV": "production", "LOOM_AUTH": "jwt"}, "LOOM_JWT_SECRET"),
        (
            {"LOOM_ENV": "production", "LOOM_AUTH": "jwt", "LOOM_JWT_SECRET": "short"},
            "LOOM_JWT_SECRET must be at least 32 bytes",
        ),
        (
            {
                "LOOM_ENV": "production",
                "LOOM_AUTH": "oidc",
                "LOOM_OIDC_JWKS_URL": "https://id.example/jwks",
                "LOOM_OIDC_ISSUER": "https://id.example",
            },
            "needs LOOM_OIDC_ISSUER and LOOM_JWT_AUDIENCE",
        ),
    ],
    ids=["default auth", "cookie auth", "jwt without key", "short secret", "oidc without aud"],
)
def test_cli_refuses_to_serve_unsafe_production(
    tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    loom = Path(sys.executable).parent / "loom"
    result = subprocess.run(
        [str(loom), "serve"],
        env=_loom_env(tmp_path, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("loom: invalid configuration"), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "Loom is starting" not in result.stdout
    assert not (tmp_path / "data").exists()  # it stopped before starting Postgres


# --- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    with LoomServer(make_settings(database_url, fake_llm, max_body_bytes=LIMIT)) as server:
        yield server


@pytest.fixture
def client(small: LoomServer) -> Iterator[Session]:
    # A fresh user per test, and a fresh connection per request: a rejected body leaves the
    # connection unusable, as it should.
    session = small.client(f"user-{uuid.uuid4().hex[:8]}", Connection="close")
    yield session
    session.close()


def _assistant(client: Session, **fields: Any) -> dict[str, Any]:
    response = client.post("/assistants", json={"name": "a", "config": CHATBOT, **fields})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON, padded with whitespace (still valid JSON) to exactly ``size`` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


JSON = {"Content-Type": "application/json"}


# --- body limit --------------------------------------------------------------------------------


def test_body_at_the_limit_is_accepted(client: Session) -> None:
    body = {"name": "at the limit", "config": CHATBOT}
    response = client.post("/assistants", data=_padded(body, LIMIT), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "at the limit"
    chunked = client.post("/assistants", data=_chunks(_padded(body, LIMIT)), headers=JSON)
    assert chunked.status_code == 200, chunked.text


def test_body_over_the_limit_by_content_length_is_413(client: Session) -> None:
    body = {"name": "too big", "config": CHATBOT}
    response = client.post("/assistants", data=_padded(body, LIMIT + 1), headers=JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert client.get("/assistants").json() == []


def test_chunked_body_over_the_limit_is_413(client: Session) -> None:
    body = {"name": "too big", "config": CHATBOT}
    data = _padded(body, LIMIT * 3)
    response = client.post("/assistants", data=_chunks(data), headers=JSON)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert client.get("/assistants").json() == []


def test_limit_applies_to_every_endpoint(client: Session) -> None:
    assistant = _assistant(client)
    thread = client.post(
        "/threads", json={"name": "t", "assistant_id": assistant["assistant_id"]}
    ).json()
    tid = thread["thread_id"]
    big = "x" * (LIMIT + 10)
    message = {"content": big, "type": "human"}
    requests_ = [
        ("POST", "/threads", {"name": big, "assistant_id": assistant["assistant_id"]}),
        ("PUT", f"/threads/{tid}", {"name": big, "assistant_id": assistant["assistant_id"]}),
        ("PUT", f"/assistants/{assistant['assistant_id']}", {"name": "a", "config": {"x": big}}),
        ("POST", f"/threads/{tid}/state", {"values": [message]}),
        ("POST", "/runs", {"thread_id": tid, "input": {"messages": [message]}}),
        ("POST", "/runs/stream", {"thread_id": tid, "input": {"messages": [message]}}),
    ]
    for method, path, body in requests_:
        data = json.dumps(body).encode()
        for payload in (data, _chunks(data)):
            response = client.request(method, path, data=payload, headers=JSON)
            assert response.status_code == 413, (method, path, response.text)
            assert response.json() == TOO_LARGE
    assert client.get(f"/threads/{tid}").json() == thread
    assert client.get(f"/threads/{tid}/state").json() == {"values": [], "next": []}
    assert client.get(f"/assistants/{assistant['assistant_id']}").json() == assistant


# --- bad input ---------------------------------------------------------------------------------


def _assert_clean_4xx(response: requests.Response, status: int = 422) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text)
    body = response.json()
    assert list(body) == ["detail"]
    detail = body["detail"]
    if status == 422:  # always a list of {loc, msg, type}
        assert isinstance(detail, list), detail
        assert all({"loc", "msg", "type"} <= set(issue) for issue in detail), detail
    return detail


def test_malformed_json_is_422(client: Session) -> None:
    for raw in (b"{bad", b'{"name": "a", "config": {}', b"", b"\xff\xfe"):
        detail = _assert_clean_4xx(client.post("/assistants", data=raw, headers=JSON))
        assert isinstance(detail, list) and detail, raw
    detail = _assert_clean_4xx(client.post("/assistants", data=b"{bad", headers=JSON))
    assert detail == [{"loc": ["body", 1], "msg": "JSON decode error", "type": "json_invalid"}]
    assert client.get("/assistants").json() == []


def _bad_assistant_bodies() -> dict[str, Any]:
    return {
        "name as a list": {"name": ["a"], "config": CHATBOT},
        "name as a number": {"name": 5, "config": CHATBOT},
        "empty name": {"name": "", "config": CHATBOT},
        "name too long": {"name": "n" * 257, "config": CHATBOT},
        "public maybe": {"name": "a", "config": CHATBOT, "public": "maybe"},
        "public as a list": {"name": "a", "config": CHATBOT, "public": [True]},
        "config as a list": {"name": "a", "config": [CHATBOT]},
        "config as a string": {"name": "a", "config": "chatbot"},
        "configurable as a list": {"name": "a", "config": {"configurable": []}},
        "missing name": {"config": CHATBOT},
        "missing config": {"name": "a"},
        "missing everything": {},
        "a list": [{"name": "a", "config": CHATBOT}],
        "null": None,
        "NUL in the name": {"name": "a\x00b", "config": CHATBOT},
        "NUL in the config": {"name": "a", "config": {"configurable": {}, "x": ["\x00"]}},
        "NUL in a config key": {"name": "a", "config": {"configurable": {}, "k\x00": 1}},
        "deeply nested config": {"name": "a", "public": True, "config": _nested(400)},
    }


def _nested(depth: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return {"configurable": {}, "x": value}


@pytest.mark.parametrize("case", list(_bad_assistant_bodies()))
def test_bad_assistant_bodies_are_422(client: Session, case: str) -> None:
    body = _bad_assistant_bodies()[case]
    _assert_clean_4xx(client.post("/assistants", json=body))
    existing = _assistant(client, name="keep")
    _assert_clean_4xx(client.put(f"/assistants/{existing['assistant_id']}", json=body))
    assert client.get("/assistants").json() == [existing]
    # Nothing half-stored breaks anyone's listing.
    assert client.get("/assistants/public").status_code == 200


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422(client: Session, literal: str) -> None:
    raw = f'{{"name": "a", "config": {{"configurable": {{}}, "x": [{literal}]}}}}'
    _assert_clean_4xx(client.post("/assistants", data=raw, headers=JSON))
    thread_raw = (
        f'{{"name": "t", "assistant_id": "{_assistant(client)["assistant_id"]}",'
        f' "metadata": {{"x": {literal}}}}}'
    )
    _assert_clean_4xx(client.post("/threads", data=thread_raw, headers=JSON))
    assert client.get("/threads").json() == []


def test_bad_thread_bodies_are_422(client: Session) -> None:
    aid = _assistant(client)["assistant_id"]
    bodies = {
        "non-uuid assistant_id": {"name": "t", "assistant_id": "not-a-uuid"},
        "numeric assistant_id": {"name": "t", "assistant_id": 5},
        "missing assistant_id": {"name": "t"},
        "missing name": {"assistant_id": aid},
        "name as a list": {"name": ["t"], "assistant_id": aid},
        "metadata as a list": {"name": "t", "assistant_id": aid, "metadata": [1]},
        "NUL in the name": {"name": "t\x00", "assistant_id": aid},
        "NUL in metadata": {"name": "t", "assistant_id": aid, "metadata": {"k": "\x00"}},
    }
    thread = client.post("/threads", json={"name": "t", "assistant_id": aid}).json()
    for case, body in bodies.items():
        _assert_clean_4xx(client.post("/threads", json=body))
        put = client.put(f"/threads/{thread['thread_id']}", json=body)
        assert put.status_code == 422, (case, put.text)
        _assert_clean_4xx(put)
    assert client.get("/threads").json() == [thread]

    detail = _assert_clean_4xx(client.post("/threads", json=bodies["non-uuid assistant_id"]))
    assert [d["loc"] for d in detail] == [["body", "assistant_id"]]


def test_bad_state_and_run_bodies_are_4xx(client: Session) -> None:
    aid = _assistant(client)["assistant_id"]
    tid = client.post("/threads", json={"name": "t", "assistant_id": aid}).json()["thread_id"]
    cases: list[tuple[str, str, Any]] = [
        ("POST", f"/threads/{tid}/state", {"values": 5}),
        ("POST", f"/threads/{tid}/state", {"values": [5]}),
        ("POST", f"/threads/{tid}/state", {"values": [{"type": "alien", "content": "x"}]}),
        ("POST", f"/threads/{tid}/state", {"values": {"messages": 5}}),
        ("POST", f"/threads/{tid}/state", {}),
        ("GET", f"/threads/{tid}/history?limit=0", None),
        ("GET", f"/threads/{tid}/history?limit=x", None),
        ("POST", "/runs", {"thread_id": "not-a-uuid", "input": {"messages": []}}),
        ("POST", "/runs", {"input": {"messages": []}}),
        ("POST", "/runs", {"thread_id": tid, "input": 5}),
        ("POST", "/runs", {"thread_id": tid, "input": {"messages": [7]}}),
        ("POST", "/runs", {"thread_id": tid, "input": {"text": "hi"}}),
        ("POST", "/runs", {"thread_id": tid, "input": None, "config": {"recursion_limit": "x"}}),
        ("POST", "/runs/stream", {"thread_id": "not-a-uuid", "input": None}),
    ]
    for method, path, body in cases:
        response = client.request(method, path, json=body)
        assert response.status_code == 422, (method, path, body, response.text)
        _assert_clean_4xx(response)
    assert client.get(f"/threads/{tid}/state").json() == {"values": [], "next": []}


@pytest.mark.parametrize(
    ("configurable", "named"),
    [
        ({"type": "wizard"}, "unknown agent type 'wizard'"),
        ({"type": "agent", "type==agent/agent_type": "GPT 9"}, "unknown model 'GPT 9'"),
        ({"type": "agent", "agent_type": "GPT 9"}, "unknown model 'GPT 9'"),
        ({"type": "chatbot", "type==chatbot/llm_type": "Claude 9"}, "unknown model 'Claude 9'"),
        ({"type": "agent", "type==agent/tools": ["Telepathy"]}, "unknown tool 'Telepathy'"),
        ({"type": "agent", "tools": [{"type": "Telepathy"}]}, "unknown tool 'Telepathy'"),
        (
            {"type": "agent", "type==agent/tools": ["Wikipedia", "Telepathy"]},
            "unknown tool 'Telepathy'",
        ),
        ({"type": ["agent"]}, "configurable.type must be a string"),
        ({"type": "agent", "type==agent/tools": "Wikipedia"}, "configurable.tools must be a list"),
    ],
)
def test_unknown_config_values_are_422_and_named(
    client: Session, configurable: dict[str, Any], named: str
) -> None:
    body = {"name": "a", "config": {"configurable": configurable}}
    [issue] = _assert_clean_4xx(client.post("/assistants", json=body))
    assert issue["msg"].startswith(f"Invalid assistant config: {named}"), issue
    existing = _assistant(client)
    [issue] = _assert_clean_4xx(client.put(f"/assistants/{existing['assistant_id']}", json=body))
    assert issue["msg"].startswith(f"Invalid assistant config: {named}"), issue
    assert client.get("/assistants").json() == [existing]


def test_bad_user_ids_are_401(small: LoomServer) -> None:
    for cookie in ('opengpts_user_id="a\\000b"', "opengpts_user_id=" + "u" * 300):
        response = requests.get(f"{small.url}/assistants", headers={"Cookie": cookie}, timeout=30)
        assert response.status_code == 401, (cookie, response.text)
        _assert_clean_4xx(response, 401)


# --- health ------------------------------------------------------------------------------------


def test_health(small: LoomServer) -> None:
    response = requests.get(f"{small.url}/health", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


# --- embedded Postgres -------------------------------------------------------------------------


def _embedded(tmp_path: Path) -> LoomServer:
    return LoomServer(make_settings(None, None, data_dir=tmp_path))  # type: ignore[arg-type]


def test_restart_on_the_embedded_database_keeps_data(tmp_path: Path) -> None:
    with _embedded(tmp_path) as first:
        alice = first.client("alice")
        assistant = _assistant(alice, name="survivor", public=True)
        thread = alice.post(
            "/threads", json={"name": "kept", "assistant_id": assistant["assistant_id"]}
        ).json()
        state = alice.post(
            f"/threads/{thread['thread_id']}/state",
            json={"values": [{"content": "remember me", "type": "human"}]},
        )
        assert state.status_code == 200, state.text
        assert requests.get(f"{first.url}/health", timeout=30).json()["status"] == "ok"
    assert (tmp_path / "pgdata" / "PG_VERSION").is_file()

    with _embedded(tmp_path) as second:
        alice = second.client("alice")
        assert alice.get("/assistants").json() == [assistant]
        assert alice.get(f"/assistants/{assistant['assistant_id']}").json() == assistant
        assert alice.get("/threads").json() == [alice.get(f"/threads/{thread['thread_id']}").json()]
        assert alice.get(f"/threads/{thread['thread_id']}/state").json() == state.json()
