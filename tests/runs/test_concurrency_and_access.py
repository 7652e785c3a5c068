"""One run per thread, cancellation, client disconnects, and who may run what."""

from __future__ import annotations

import time
import uuid

import psycopg

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import (
    CHATBOT,
    create_assistant,
    history,
    messages,
    new_thread,
    run_body,
    state,
    wait_run,
)
from tests.runs.sse_client import OpenStream, check_shape, stream_run

SLOW_TEXT = " ".join(f"w{i}" for i in range(40))
DELAY = 0.02  # per token: the slow reply streams for under a second


def test_second_run_on_busy_thread_is_409(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    other = loom.client("alice")  # a second connection while the first one streams
    assistant_id, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW_TEXT, token_delay=DELAY)
    stream = OpenStream(client, run_body(thread_id, "slowly"))
    stream.first_token()

    for path in ("/runs", "/runs/stream"):
        r = other.post(path, json=run_body(thread_id, "me too", assistant_id=assistant_id))
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "detail": "This thread already has a run in progress; wait for it to finish or "
            "cancel it"
        }
    r = other.post(
        f"/threads/{thread_id}/state", json={"values": [{"type": "human", "content": "x"}]}
    )
    assert r.status_code == 409, r.text
    assert "in progress" in r.json()["detail"]

    events = stream.rest()
    assert events[-1].event == "end"
    assert "error" not in [e.event for e in events]
    assert events[-2].data[-1]["content"] == SLOW_TEXT
    # The moment the stream has ended, the thread takes a new run (no 409 window).
    fake_llm.reply(text="Next one.")
    r = other.post("/runs", json=run_body(thread_id, "now?"))
    assert r.status_code == 200, r.text
    assert wait_run(other, r.json()["run_id"])["status"] == "success"
    assert [m["content"] for m in messages(client, thread_id)] == [
        "slowly",
        SLOW_TEXT,
        "now?",
        "Next one.",
    ]
    # the refused requests left nothing behind
    assert len(history(client, thread_id)) == 6


def test_other_users_threads_and_runs_are_404(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    alice = loom.client("alice")
    bob = loom.client("bob")
    assistant_id, thread_id = new_thread(alice)
    fake_llm.reply(text="For Alice only.")
    stream = stream_run(alice, run_body(thread_id, "secret"))
    check_shape(stream)
    run_id = stream.run_id

    missing_thread = str(uuid.uuid4())
    for path in ("/runs", "/runs/stream"):
        for tid in (thread_id, missing_thread):
            r = bob.post(path, json={"thread_id": tid, "input": {"messages": []}})
            assert r.status_code == 404, (path, r.text)
            assert r.json() == {"detail": "Thread not found"}
    for method, path in (
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/stream"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("GET", f"/runs/{uuid.uuid4()}"),
        ("GET", "/runs/not-a-uuid"),
    ):
        r = bob.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"detail": "Run not found"}
    # Alice still sees her run, and Bob's attempts changed nothing; Bob got no model call.
    assert alice.get(f"/runs/{run_id}").json()["status"] == "success"
    assert [m["content"] for m in messages(alice, thread_id)] == ["secret", "For Alice only."]
    assert len(fake_llm.chat_requests) == 1
    # Bob cannot run Alice's thread by naming her assistant either.
    _, bob_thread = new_thread(bob)
    r = bob.post("/runs", json={**run_body(bob_thread, "x"), "assistant_id": assistant_id})
    assert r.status_code == 409, r.text


def test_assistant_must_be_the_threads(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    other_assistant = create_assistant(client, CHATBOT, name="other")
    for path in ("/runs", "/runs/stream"):
        r = client.post(path, json=run_body(thread_id, "hi", assistant_id=other_assistant))
        assert r.status_code == 409, r.text  # a conflict with the thread's own assistant
        assert r.json() == {"detail": "assistant_id does not match the thread's assistant"}
    assert fake_llm.chat_requests == []
    assert state(client, thread_id) == {"values": [], "next": []}


def test_run_config_may_not_set_identity(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    for key in ("user_id", "thread_id", "assistant_id", "run_id", "checkpoint_ns"):
        for path in ("/runs", "/runs/stream"):
            body = {**run_body(thread_id, "hi"), "config": {"configurable": {key: "bob"}}}
            r = client.post(path, json=body)
            assert r.status_code == 422, (key, r.text)
            message = f"config.configurable may not set {key}"
            issue = {"loc": ["body"], "msg": message, "type": "invalid_input"}
            assert r.json() == {"detail": [issue]}
    assert fake_llm.chat_requests == []
    assert history(client, thread_id) == []
    # other configurable keys are fine
    fake_llm.reply(text="Fine.")
    body = {**run_body(thread_id, "hi"), "config": {"configurable": {"something": "else"}}}
    stream = stream_run(client, body)
    check_shape(stream)
    assert "error" not in stream.names
    assert [m["content"] for m in messages(client, thread_id)] == ["hi", "Fine."]


def test_cancel_a_running_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    other = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW_TEXT, token_delay=DELAY * 5)  # would take seconds
    stream = OpenStream(client, run_body(thread_id, "long one"))
    stream.first_token()

    r = other.post(f"/runs/{stream.run_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert other.get(f"/runs/{stream.run_id}").json()["status"] == "cancelled"

    events = stream.rest()
    assert [e.event for e in events[-2:]] == ["error", "end"]
    assert events[-2].data == {"status_code": 499, "message": "The run was cancelled"}
    streamed = [e.data[-1]["content"] for e in events if e.event == "data"]
    assert streamed[-1] != SLOW_TEXT  # it really was cut short
    # the reply so far stays in the thread, marked stopped (the stream's last data shows it)
    kept = messages(client, thread_id)
    assert [(m["type"], m["content"]) for m in kept] == [
        ("human", "long one"),
        ("ai", streamed[-1]),
    ]
    assert kept[-1]["response_metadata"]["loom_status"] == "stopped"
    assert [e.data for e in events if e.event == "data"][-1][-1] == kept[-1]
    # cancelling again is harmless
    r = other.post(f"/runs/{stream.run_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    fake_llm.reply(text="After the cancel.")
    stream2 = stream_run(client, run_body(thread_id, "again"))
    check_shape(stream2)
    assert "error" not in stream2.names
    assert [m["content"] for m in messages(client, thread_id)] == [
        "long one",
        streamed[-1],
        "again",
        "After the cancel.",
    ]


def test_cancel_a_background_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    reply = fake_llm.reply(text=SLOW_TEXT, token_delay=DELAY * 5)
    r = client.post("/runs", json=run_body(thread_id, "background"))
    assert r.status_code == 200, r.text
    run_id = r.json()["run_id"]
    wait_run(client, run_id, until={"running"})
    for _ in range(500):  # until the model call is under way
        if reply.requests:
            break
        time.sleep(0.01)
    assert reply.requests
    r = client.post(f"/runs/{run_id}/cancel")
    assert r.json()["status"] == "cancelled"
    kept = messages(client, thread_id)
    assert kept[0]["type"] == "human"
    # whatever the model had said when it was stopped stays, marked
    assert all(m["response_metadata"]["loom_status"] == "stopped" for m in kept[1:])


def test_client_disconnect_does_not_stop_the_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW_TEXT, token_delay=DELAY)
    stream = OpenStream(client, run_body(thread_id, "then I leave"))
    first = stream.first_token()
    ai_id = first.data[-1]["id"]
    stream.close()

    run = wait_run(client, stream.run_id)
    assert run["status"] == "success"
    values = messages(client, thread_id)
    assert [(m["type"], m["content"]) for m in values] == [
        ("human", "then I leave"),
        ("ai", SLOW_TEXT),
    ]
    assert values[1]["id"] == ai_id


def test_delete_thread_during_a_run(
    loom: LoomServer, fake_llm: FakeOpenAI, database_url: str
) -> None:
    """Deleting a thread cancels its run first, then removes every checkpoint row."""
    client = loom.client("alice")
    other = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Short.")
    check_shape(stream_run(client, run_body(thread_id, "first")))
    fake_llm.reply(text=SLOW_TEXT, token_delay=DELAY * 5)
    stream = OpenStream(client, run_body(thread_id, "second"))
    stream.first_token()

    r = other.delete(f"/threads/{thread_id}")
    assert r.status_code == 200, r.text
    events = stream.rest()
    assert [e.event for e in events[-2:]] == ["error", "end"]
    assert events[-2].data["status_code"] == 499
    assert other.get(f"/threads/{thread_id}").status_code == 404
    assert other.get(f"/runs/{stream.run_id}").status_code == 404
    with psycopg.connect(database_url) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            row = conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s", (thread_id,)
            ).fetchone()
            assert row == (0,), table
