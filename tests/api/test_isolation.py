"""Users only ever see and change what they own (or, for reading, what is public).

A foreign id answers exactly like an id that does not exist, so ids cannot be probed, and a
``PUT`` never creates or moves an object (OpenGPTs issue #268).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import LoomServer, Session
from tests.fakes.openai_server import FakeOpenAI

CHATBOT = {"configurable": {"type": "chatbot", "type==chatbot/llm_type": "GPT 4o Mini"}}
AGENT = {
    "configurable": {
        "type": "agent",
        "type==agent/agent_type": "GPT 3.5 Turbo",
        "type==agent/system_message": "You are a helpful assistant",
        "type==agent/tools": ["Wikipedia"],
    }
}

# Endpoints anyone may call without a user: they expose no user data.
ANONYMOUS = {
    ("GET", "/health"),
    ("GET", "/auth/mode"),
    ("GET", "/runs/config_schema"),
    ("GET", "/runs/input_schema"),
    ("GET", "/runs/output_schema"),
    ("GET", "/assistants/public"),  # as in OpenGPTs; owners' ids are not shown (see below)
}


@dataclass
class World:
    a: Session
    b: Session
    private_assistant: dict[str, Any]
    public_assistant: dict[str, Any]
    thread: dict[str, Any]
    run_id: str
    b_assistant: dict[str, Any]


def _ok(response: requests.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def _wait_for_run(client: Session, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = _ok(client.get(f"/runs/{run_id}"))
        if run["status"] not in ("pending", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world(loom: LoomServer, fake_llm: FakeOpenAI) -> Iterator[World]:
    a = loom.client("alice-iso")
    b = loom.client("bob-iso")
    private = _ok(a.post("/assistants", json={"name": "a-private", "config": CHATBOT}))
    public = _ok(a.post("/assistants", json={"name": "a-public", "config": AGENT, "public": True}))
    thread = _ok(
        a.post("/threads", json={"name": "a-thread", "assistant_id": private["assistant_id"]})
    )
    fake_llm.reply(text="Hello, Alice!")
    run = _ok(
        a.post(
            "/runs",
            json={
                "assistant_id": private["assistant_id"],
                "thread_id": thread["thread_id"],
                "input": {"messages": [{"content": "hi, I am alice", "type": "human"}]},
            },
        )
    )
    assert _wait_for_run(a, run["run_id"])["status"] == "success"
    b_assistant = _ok(b.post("/assistants", json={"name": "b-own", "config": CHATBOT}))
    yield World(
        a,
        b,
        private,
        public,
        _ok(a.get(f"/threads/{thread['thread_id']}")),
        run["run_id"],
        b_assistant,
    )
    a.close()
    b.close()


def _snapshot(client: Session) -> dict[str, Any]:
    """Everything a user can read about their own data."""
    assistants = _ok(client.get("/assistants"))
    threads = _ok(client.get("/threads"))
    out: dict[str, Any] = {"assistants": assistants, "threads": threads, "one": {}}
    for a in assistants:
        out["one"][a["assistant_id"]] = _ok(client.get(f"/assistants/{a['assistant_id']}"))
    for t in threads:
        tid = t["thread_id"]
        out["one"][tid] = {
            "thread": _ok(client.get(f"/threads/{tid}")),
            "state": _ok(client.get(f"/threads/{tid}/state")),
            "history": _ok(client.get(f"/threads/{tid}/history")),
        }
    return out


def _foreign_requests(w: World) -> list[tuple[str, str, Any]]:
    """(method, path with {id}, json) for every way B could touch A's private objects."""
    aid = w.private_assistant["assistant_id"]
    tid = w.thread["thread_id"]
    b_aid = w.b_assistant["assistant_id"]
    message = {"content": "I am in", "type": "human"}
    return [
        ("GET", f"/assistants/{aid}", None),
        ("PUT", f"/assistants/{aid}", {"name": "stolen", "config": CHATBOT, "public": True}),
        ("DELETE", f"/assistants/{aid}", None),
        ("GET", f"/threads/{tid}", None),
        ("PUT", f"/threads/{tid}", {"name": "stolen", "assistant_id": b_aid}),
        ("DELETE", f"/threads/{tid}", None),
        ("GET", f"/threads/{tid}/state", None),
        ("POST", f"/threads/{tid}/state", {"values": [message]}),
        ("GET", f"/threads/{tid}/history", None),
        ("GET", f"/runs/{w.run_id}", None),
        ("GET", f"/runs/{w.run_id}/stream", None),
        ("POST", f"/runs/{w.run_id}/cancel", None),
    ]


def _replace_ids(path: str, w: World, replacement: str) -> str:
    for real in (w.private_assistant["assistant_id"], w.thread["thread_id"], w.run_id):
        path = path.replace(real, replacement)
    return path


def test_foreign_ids_answer_like_unknown_ids(world: World) -> None:
    before = _snapshot(world.a)
    for method, path, body in _foreign_requests(world):
        foreign = world.b.request(method, path, json=body)
        unknown = world.b.request(method, _replace_ids(path, world, str(uuid.uuid4())), json=body)
        malformed = world.b.request(method, _replace_ids(path, world, "not-a-uuid"), json=body)
        assert foreign.status_code == 404, (method, path, foreign.text)
        assert foreign.headers["content-type"] == "application/json"
        assert foreign.json() == unknown.json(), (method, path)
        assert unknown.status_code == 404
        assert malformed.status_code == 404, (method, path, malformed.text)
        assert malformed.json() == unknown.json(), (method, path)
        assert foreign.json()["detail"] in (
            "Assistant not found",
            "Thread not found",
            "Run not found",
        )
    assert _snapshot(world.a) == before
    # B got nothing out of it.
    assert _ok(world.b.get("/threads")) == []
    assert _ok(world.b.get("/assistants")) == [world.b_assistant]


def test_the_owner_gets_the_same_answer_for_unknown_ids(world: World) -> None:
    # The 404 bodies B saw above are the generic ones, not something only strangers get.
    for method, path, body in _foreign_requests(world):
        unknown_path = _replace_ids(path, world, str(uuid.uuid4()))
        mine = world.a.request(method, unknown_path, json=body)
        theirs = world.b.request(method, unknown_path, json=body)
        assert (mine.status_code, mine.json()) == (theirs.status_code, theirs.json())


def test_no_thread_or_run_on_foreign_objects(world: World) -> None:
    before = _snapshot(world.a)
    tid = world.thread["thread_id"]
    aid = world.private_assistant["assistant_id"]
    unknown = str(uuid.uuid4())

    # A thread with A's private assistant: like an unknown assistant.
    foreign = world.b.post("/threads", json={"name": "t", "assistant_id": aid})
    missing = world.b.post("/threads", json={"name": "t", "assistant_id": unknown})
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Assistant not found"}

    # B's own thread cannot be pointed at A's private assistant either.
    b_thread = _ok(
        world.b.post(
            "/threads", json={"name": "b", "assistant_id": world.b_assistant["assistant_id"]}
        )
    )
    moved = world.b.put(
        f"/threads/{b_thread['thread_id']}", json={"name": "b", "assistant_id": aid}
    )
    assert moved.status_code == 404
    assert moved.json() == {"detail": "Assistant not found"}
    assert _ok(world.b.get(f"/threads/{b_thread['thread_id']}")) == b_thread

    # Runs on A's thread, background and streamed.
    message = {"content": "hi", "type": "human"}
    for path in ("/runs", "/runs/stream"):
        for assistant_id in (aid, None):
            body: dict[str, Any] = {"thread_id": tid, "input": {"messages": [message]}}
            if assistant_id:
                body["assistant_id"] = assistant_id
            foreign = world.b.post(path, json=body)
            missing = world.b.post(path, json={**body, "thread_id": unknown})
            assert foreign.status_code == 404, (path, foreign.text)
            assert foreign.json() == missing.json() == {"detail": "Thread not found"}

    _ok(world.b.delete(f"/threads/{b_thread['thread_id']}"))
    assert _snapshot(world.a) == before


def test_public_assistant_is_readable_not_writable(world: World) -> None:
    aid = world.public_assistant["assistant_id"]
    before = _snapshot(world.a)

    seen_by_b = {**world.public_assistant, "user_id": None}  # not A's id
    assert _ok(world.b.get(f"/assistants/{aid}")) == seen_by_b
    assert seen_by_b in _ok(world.b.get("/assistants/public"))
    assert world.private_assistant["assistant_id"] not in {
        a["assistant_id"] for a in _ok(world.b.get("/assistants/public"))
    }

    unknown = str(uuid.uuid4())
    change = {"name": "hijacked", "config": CHATBOT, "public": False}
    for method, body in (("PUT", change), ("DELETE", None)):
        foreign = world.b.request(method, f"/assistants/{aid}", json=body)
        missing = world.b.request(method, f"/assistants/{unknown}", json=body)
        assert foreign.status_code == 404, (method, foreign.text)
        assert foreign.json() == missing.json() == {"detail": "Assistant not found"}

    assert _ok(world.a.get(f"/assistants/{aid}")) == world.public_assistant
    assert _snapshot(world.a) == before

    # B may start a thread with it; the thread is B's.
    thread = _ok(world.b.post("/threads", json={"name": "borrowed", "assistant_id": aid}))
    assert thread["user_id"] == "bob-iso"
    assert thread["assistant_id"] == aid
    assert _ok(world.b.get(f"/threads/{thread['thread_id']}/state")) == {"values": [], "next": []}
    assert world.a.get(f"/threads/{thread['thread_id']}").status_code == 404
    _ok(world.b.delete(f"/threads/{thread['thread_id']}"))
    assert _snapshot(world.a) == before


def test_public_assistants_are_listed_without_credentials(loom: LoomServer, world: World) -> None:
    """As in OpenGPTs, anyone may list the public assistants; an owner's id is shown to that
    owner only (``null`` for everyone else), so a public listing names nobody."""
    public = world.public_assistant
    assert public["user_id"] == "alice-iso"  # her own id, in her own responses (guide shape)
    shown = {**public, "user_id": None}
    for anonymous in (loom.client(None), loom.client(" ")):
        for path in ("/assistants/public", "/assistants/public/"):
            listed = anonymous.get(path)
            assert listed.status_code == 200, (path, listed.text)
            assert shown in listed.json()
            assert {a["user_id"] for a in listed.json()} == {None}
            assert all(set(a) == set(public) for a in listed.json())
        anonymous.close()
    assert public in _ok(world.a.get("/assistants/public"))
    assert shown in _ok(world.b.get("/assistants/public"))
    assert world.b_assistant not in _ok(world.b.get("/assistants/public"))  # private


def test_no_response_shows_another_users_id(
    loom: LoomServer, world: World, fake_llm: FakeOpenAI
) -> None:
    """B uses A's public assistant through every API (native, OpenAI's, ChatKit's): nothing B
    reads carries A's user id."""
    a_id = "alice-iso"
    aid = world.public_assistant["assistant_id"]
    b = world.b
    thread = _ok(b.post("/threads", json={"name": "with a's bot", "assistant_id": aid}))
    tid = thread["thread_id"]
    fake_llm.reply(text="Hello, Bob!")
    streamed = b.post(
        "/runs/stream",
        json={"thread_id": tid, "input": {"messages": [{"content": "hi", "type": "human"}]}},
    )
    assert streamed.status_code == 200
    seen = [streamed.text]
    run_id = next(r["run_id"] for r in _ok(b.get(f"/threads/{tid}/runs")))
    for path in (
        "/assistants/public",
        f"/assistants/{aid}",
        f"/assistants/{aid}/files",
        "/threads",
        f"/threads/{tid}",
        f"/threads/{tid}/state",
        f"/threads/{tid}/history",
        f"/threads/{tid}/branches",
        f"/threads/{tid}/runs",
        f"/runs/{run_id}",
        f"/runs/{run_id}/stream",
    ):
        response = b.get(path)
        assert response.status_code in (200, 404), (path, response.text)
        seen.append(response.text)

    key = _ok(b.post("/api-keys", json={"name": "isolation"}))["key"]
    v1 = loom.client(None, Authorization=f"Bearer {key}")
    asst = "asst_" + uuid.UUID(aid).hex
    v1_thread = "thread_" + uuid.UUID(tid).hex
    for path in (f"/v1/assistants/{asst}", f"/v1/threads/{v1_thread}"):
        response = v1.get(path)
        assert response.status_code == 200, (path, response.text)
        seen.append(response.text)
    fake_llm.reply(text="Hello again, Bob!")
    v1_run = v1.post(
        "/v1/threads/runs",
        json={"assistant_id": asst, "thread": {"messages": [{"role": "user", "content": "hi"}]}},
    )
    assert v1_run.status_code == 200, v1_run.text
    seen.append(v1_run.text)
    v1.close()

    fake_llm.reply(text="Hello from ChatKit, Bob!")
    chatkit = b.post(
        "/chatkit",
        json={
            "type": "threads.create",
            "metadata": {"assistant_id": aid},
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": "hi"}],
                    "attachments": [],
                    "inference_options": {},
                }
            },
        },
    )
    assert chatkit.status_code == 200, chatkit.text
    seen.append(chatkit.text)
    listed = b.post("/chatkit", json={"type": "threads.list", "params": {}})
    assert listed.status_code == 200, listed.text
    seen.append(listed.text)

    assert [text[:300] for text in seen if a_id in text] == []
    assert any("bob-iso" in text for text in seen)  # B's own id is shown to B


def test_put_never_creates_or_claims(loom: LoomServer, world: World) -> None:
    carol = loom.client("carol-iso")
    aid = world.private_assistant["assistant_id"]
    tid = world.thread["thread_id"]
    before = _snapshot(world.a)

    # Carol (who owns nothing) PUTs onto A's ids and onto fresh ids.
    fresh_a, fresh_t = str(uuid.uuid4()), str(uuid.uuid4())
    body_a = {"name": "claimed", "config": CHATBOT, "public": True}
    body_t = {"name": "claimed", "assistant_id": world.public_assistant["assistant_id"]}
    for path, body in (
        (f"/assistants/{aid}", body_a),
        (f"/assistants/{fresh_a}", body_a),
        (f"/threads/{tid}", body_t),
        (f"/threads/{fresh_t}", body_t),
    ):
        response = carol.put(path, json=body)
        assert response.status_code == 404, (path, response.text)

    assert _ok(carol.get("/assistants")) == []
    assert _ok(carol.get("/threads")) == []
    for path in (f"/assistants/{fresh_a}", f"/threads/{fresh_t}"):
        assert carol.get(path).status_code == 404
        assert world.a.get(path).status_code == 404
    assert "claimed" not in {a["name"] for a in _ok(carol.get("/assistants/public"))}
    assert _ok(world.a.get(f"/assistants/{aid}")) == world.private_assistant
    assert _snapshot(world.a) == before
    carol.close()


def _all_routes(loom: LoomServer) -> list[tuple[str, str]]:
    spec = _ok(requests.get(f"{loom.url}/openapi.json", timeout=30))
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item]


def test_every_endpoint_needs_a_user(loom: LoomServer, world: World) -> None:
    routes = _all_routes(loom)
    assert ANONYMOUS <= set(routes)
    protected = [r for r in routes if r not in ANONYMOUS]
    # The routes OpenGPTs' API has are all here (and so covered below).
    assert {
        ("GET", "/assistants"),
        ("POST", "/assistants"),
        ("GET", "/assistants/{assistant_id}"),
        ("PUT", "/assistants/{assistant_id}"),
        ("DELETE", "/assistants/{assistant_id}"),
        ("GET", "/threads"),
        ("POST", "/threads"),
        ("GET", "/threads/{thread_id}"),
        ("PUT", "/threads/{thread_id}"),
        ("DELETE", "/threads/{thread_id}"),
        ("GET", "/threads/{thread_id}/state"),
        ("POST", "/threads/{thread_id}/state"),
        ("GET", "/threads/{thread_id}/history"),
        ("POST", "/runs"),
        ("POST", "/runs/stream"),
        ("GET", "/runs/{run_id}"),
    } <= set(protected)

    ids = {
        "{assistant_id}": world.private_assistant["assistant_id"],
        "{thread_id}": world.thread["thread_id"],
        "{run_id}": world.run_id,
    }
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/assistants"): {"name": "x", "config": CHATBOT},
        ("PUT", "/assistants/{assistant_id}"): {"name": "x", "config": CHATBOT},
        ("POST", "/threads"): {"name": "x", "assistant_id": ids["{assistant_id}"]},
        ("PUT", "/threads/{thread_id}"): {"name": "x", "assistant_id": ids["{assistant_id}"]},
        ("POST", "/threads/{thread_id}/state"): {"values": [{"content": "x", "type": "human"}]},
        ("POST", "/runs"): {"thread_id": ids["{thread_id}"], "input": {"messages": []}},
        ("POST", "/runs/stream"): {"thread_id": ids["{thread_id}"], "input": {"messages": []}},
    }
    before = _snapshot(world.a)
    anonymous = loom.client(None)
    blank = loom.client(" ")
    for method, template in protected:
        path = template
        for key, value in ids.items():
            path = path.replace(key, value)
        for client in (anonymous, blank):
            response = client.request(method, path, json=bodies.get((method, template)))
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/json"
            detail = response.json()
            if template.startswith("/v1/"):  # OpenAI's shape; /v1 takes API keys only
                assert list(detail) == ["error"]
                assert detail["error"]["code"] == "invalid_api_key"
                continue
            assert list(detail) == ["detail"]
            assert detail["detail"] == "Missing the opengpts_user_id cookie"
    # Anonymous endpoints still answer without a user.
    for method, path in ANONYMOUS:
        assert anonymous.request(method, path).status_code == 200, path
    anonymous.close()
    blank.close()
    assert _snapshot(world.a) == before
