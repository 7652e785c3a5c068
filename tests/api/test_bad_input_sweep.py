"""Bad input on every route of the OpenAPI document: never a 5xx, always the one error shape.

For every operation, with real ids of Alice's objects in its path: a body nested far too deep,
NUL characters, a 1 MB string, a body of the wrong content type, garbage that is not JSON, and
ids that are not UUIDs. Every answer is below 500; every error is the protocol's one shape
(``{"detail": "..."}``, ``{"detail": [{"loc", "msg", "type"}]}`` for 422, ChatKit's
``{"detail", "code"}``, OpenAI's ``{"error": {...}}`` under ``/v1``) and its status is one the
document declares for the operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import LoomServer, Session, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import CHATBOT, create_assistant, create_thread

NUL = "a\x00b"
HUGE = "x" * (1024 * 1024)


def _deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": [value]}
    return value


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    # A body limit above 1 MB, so the 1 MB string reaches the routes' own checks.
    settings = make_settings(database_url, fake_llm, max_body_bytes=4 * 1024 * 1024)
    with LoomServer(settings) as loom:
        yield loom


@pytest.fixture(scope="module")
def alice(server: LoomServer) -> Session:
    return server.client("alice")


@pytest.fixture(scope="module")
def alice_v1(server: LoomServer, alice: Session) -> Session:
    """Alice with an API key (``/v1`` takes no cookie)."""
    key = alice.post("/api-keys", json={"name": "sweep"}).json()["key"]
    return server.client(None, Authorization=f"Bearer {key}")


@pytest.fixture(scope="module")
def ids(alice: Session) -> dict[str, str]:
    assistant_id = create_assistant(alice, CHATBOT, name="sweep")
    thread_id = create_thread(alice, assistant_id, name="sweep")
    return {"assistant_id": assistant_id, "thread_id": thread_id}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


def _fill(path: str, ids: dict[str, str], default: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), default), path)


def _bodies() -> list[tuple[str, dict[str, Any]]]:
    json_bodies: dict[str, Any] = {
        "deep": _deep(300),
        "nul": {"name": NUL, "config": {"k": NUL}, "values": [NUL], "input": [NUL]},
        "nul_key": {"name": "n", "metadata": {NUL: 1}, "config": {NUL: 1}},
        "huge": {"name": HUGE, "config": {"k": "v"}, "values": ["v"], "input": "v"},
        "types": {"name": 1, "config": [], "public": "yes", "thread_id": 7, "values": 3},
    }
    cases: list[tuple[str, dict[str, Any]]] = [
        (name, {"data": json.dumps(body), "headers": {"Content-Type": "application/json"}})
        for name, body in json_bodies.items()
    ]
    cases += [
        ("text", {"data": "hello", "headers": {"Content-Type": "text/plain"}}),
        ("not_json", {"data": "{oops", "headers": {"Content-Type": "application/json"}}),
        ("form", {"data": {"config": NUL}}),
        ("multipart_junk", {"files": {"files": ("a\x00.txt", b"\x00\xff")}, "data": {"x": NUL}}),
    ]
    return cases


def _error_shape_ok(path: str, status: int, body: Any) -> bool:
    if path.startswith("/v1"):
        error = body.get("error") if isinstance(body, dict) else None
        return isinstance(error, dict) and isinstance(error.get("message"), str)
    if not isinstance(body, dict) or "detail" not in body:
        return False
    detail = body["detail"]
    if status == 422:
        return isinstance(detail, list) and all(
            isinstance(i, dict) and {"loc", "msg", "type"} <= i.keys() for i in detail
        )
    return isinstance(detail, str)


def test_messages_are_held_to_the_same_rules_everywhere(
    alice: Session, ids: dict[str, str]
) -> None:
    """A NUL character is refused by POST /threads/{id}/state as by POST /runs."""
    message = {"type": "human", "content": NUL}
    for path, body in [
        (f"/threads/{ids['thread_id']}/state", {"values": [message]}),
        ("/runs", {"thread_id": ids["thread_id"], "input": [message]}),
    ]:
        r = alice.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        [issue] = r.json()["detail"]
        assert issue["msg"].endswith("may not contain NUL characters")


def test_bad_input_never_fails_the_server(
    server: LoomServer, alice: Session, alice_v1: Session, ids: dict[str, str]
) -> None:
    doc = alice.get("/openapi.json").json()
    problems: list[str] = []
    checked = 0
    for method, path, operation in _operations(doc):
        declared = set(operation["responses"])
        targets = [_fill(path, ids, "not-a-uuid")]
        if "{" in path:
            targets += [_fill(path, {}, "not-a-uuid"), _fill(path, {}, NUL.replace("\x00", "%00"))]
        for url in targets:
            cases = _bodies() if method in ("POST", "PUT", "PATCH") else [("none", {})]
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            if query:
                cases.append(("nul_query", {"params": {name: NUL for name in query}}))
            for name, kwargs in cases:
                client = alice_v1 if path.startswith("/v1") else alice
                try:
                    r = client.request(method, url, **kwargs)
                except requests.RequestException as exc:
                    problems.append(f"{method} {url} [{name}]: {exc!r}")
                    continue
                checked += 1
                where = f"{method} {path} [{name}] -> {r.status_code}"
                if r.status_code >= 500:
                    problems.append(f"{where}: {r.text[:200]}")
                    continue
                if r.status_code < 400:
                    continue
                if str(r.status_code) not in declared:
                    problems.append(f"{where}: undeclared status")
                is_json = r.headers.get("content-type", "").startswith("application/json")
                if not is_json or not _error_shape_ok(path, r.status_code, r.json()):
                    problems.append(f"{where}: not the error shape: {r.text[:200]}")
    assert checked > 300
    assert problems == [], "\n".join(problems)
