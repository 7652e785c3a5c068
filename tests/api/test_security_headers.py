"""Security headers on the UI, its assets, the API and SSE streams; HSTS over TLS only.

Served by a real uvicorn (as ``loom serve`` runs it, with the same proxy-header settings), so
``X-Forwarded-Proto`` from a trusted proxy makes the request https, and from anyone else
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.conftest import ROOT, LoomServer, Session, make_settings
from tests.fakes.openai_server import FakeOpenAI, tokenize
from tests.runs.helpers import new_thread, run_body, wait_run
from tests.runs.sse_client import SseParser

DIST = ROOT / "frontend" / "dist"
HSTS = "Strict-Transport-Security"
TEXT = "alpha beta gamma delta epsilon"


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    if not (DIST / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make ui` (make test does it first)")
    with LoomServer(make_settings(database_url, fake_llm)) as loom:
        yield loom


@pytest.fixture(scope="module")
def untrusting(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    """A server that trusts only a proxy at another address: the tests' X-Forwarded-Proto is
    not believed."""
    settings = make_settings(database_url, fake_llm, forwarded_allow_ips="10.11.12.13")
    with LoomServer(settings) as loom:
        yield loom


@pytest.fixture
def client(server: LoomServer) -> Iterator[Session]:
    session = server.client("hedy")
    yield session
    session.close()


def _policy(response: requests.Response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no CSP on {response.url}"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        assert name not in directives, header
        directives[name] = values
    return directives


def _check_headers(response: requests.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = _policy(response)
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]  # remote images are never loaded
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert HSTS not in response.headers  # plain http


def _asset() -> str:
    built = sorted(p.name for p in (DIST / "assets").iterdir() if p.suffix in (".js", ".css"))
    assert built, "frontend/dist/assets is empty"
    return built[0]


def test_ui_pages_and_assets(client: Session) -> None:
    for path in ("/", "/t/some-thread", f"/assets/{_asset()}", "/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:200])
        _check_headers(response)


def test_api_responses(client: Session) -> None:
    listed = client.get("/assistants")
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json"
    _check_headers(listed)
    missing = client.get("/threads/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    _check_headers(missing)
    anonymous = requests.get(f"{client.base}/me", timeout=30)
    assert anonymous.status_code == 401
    _check_headers(anonymous)
    for path in ("/health", "/auth/mode", "/openapi.json"):
        _check_headers(client.get(path))


def test_the_api_reference_has_its_own_policy(client: Session) -> None:
    """Swagger UI needs its inline bootstrap script and its CDN; it is still never framed."""
    docs = client.get("/docs")
    assert docs.status_code == 200
    policy = _policy(docs)
    assert policy["frame-ancestors"] == ["'none'"]
    assert "https://cdn.jsdelivr.net" in policy["script-src"]
    assert docs.headers["X-Content-Type-Options"] == "nosniff"


def test_sse_stream_has_the_headers_and_is_not_held_back(
    client: Session, fake_llm: FakeOpenAI
) -> None:
    """The first tokens reach the client while the model is still silent (the middleware only
    touches the response's start), and the stream's response carries the headers."""
    _, thread_id = new_thread(client)
    fake_llm.fault("stall", after_tokens=2, text=TEXT)
    first_two = "".join(tokenize(TEXT)[:2])
    with client.post("/runs/stream", json=run_body(thread_id, "go"), stream=True) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        _check_headers(response)
        parser = SseParser()
        names: list[str] = []
        run_id = ""
        seen = False
        for chunk in response.iter_content(chunk_size=None):
            for event in parser.feed(chunk):
                names.append(event.event)
                if event.event == "metadata":
                    run_id = event.data["run_id"]
                if event.event == "data" and event.data[-1]["content"] == first_two:
                    seen = True
            if seen or "end" in names:
                break
        assert seen, names
        assert "end" not in names  # the model is still stalled: the run goes on
    assert client.post(f"/runs/{run_id}/cancel").status_code == 200
    wait_run(client, run_id)


def test_hsts_only_over_https(client: Session, untrusting: LoomServer) -> None:
    """HSTS when the request came over TLS, as a trusted proxy says (LOOM_FORWARDED_ALLOW_IPS,
    127.0.0.1 by default); never over plain http, nor on an untrusted client's say-so."""
    for path in ("/", "/assistants", "/health"):
        secure = client.get(path, headers={"X-Forwarded-Proto": "https"})
        assert secure.headers[HSTS] == "max-age=31536000", path
        assert HSTS not in client.get(path).headers
        assert HSTS not in client.get(path, headers={"X-Forwarded-Proto": "http"}).headers
        claimed = requests.get(
            f"{untrusting.url}{path}", headers={"X-Forwarded-Proto": "https"}, timeout=30
        )
        assert HSTS not in claimed.headers, path
        _check_headers(claimed)
