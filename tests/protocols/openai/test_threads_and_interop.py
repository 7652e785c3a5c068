"""Assistants, threads and messages through the official SDK, and one conversation moving
between ``/v1`` runs and native ``/runs/stream`` runs: a ``/v1`` object is a Loom object."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.sse_client import check_shape, stream_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _loom_id(wire_id: str) -> str:
    return str(uuid.UUID(wire_id.rsplit("_", 1)[-1]))


def _texts(messages: Any) -> list[str]:
    return ["".join(c.text.value for c in m.content if c.type == "text") for m in messages]


def test_assistants_crud_and_paging(client: openai.OpenAI, loom: LoomServer) -> None:
    before = {a.id for a in client.beta.assistants.list(limit=100).data}
    made = [
        client.beta.assistants.create(
            model="gpt-4o-mini",
            name=f"a{i}",
            description=f"number {i}",
            instructions=f"You are number {i}.",
            metadata={"i": str(i)},
            temperature=0.5,
            top_p=0.9,
        )
        for i in range(5)
    ]
    ids = [a.id for a in made]
    first = made[0]
    assert (first.name, first.description, first.metadata) == ("a0", "number 0", {"i": "0"})
    assert (first.temperature, first.top_p, first.model) == (0.5, 0.9, "gpt-4o-mini")
    assert first.instructions == "You are number 0." and first.tools == []

    listed = [a.id for a in client.beta.assistants.list(limit=100).data if a.id not in before]
    assert listed == list(reversed(ids))  # newest first by default
    page = client.beta.assistants.list(order="asc", limit=2, after=ids[0])
    assert [a.id for a in page.data] == ids[1:3] and page.has_more
    # The SDK's auto-paging walks every page with after.
    walked = [a.id for a in client.beta.assistants.list(order="asc", limit=2) if a.id in ids]
    assert walked == ids

    updated = client.beta.assistants.update(
        first.id, name="renamed", instructions="New rules.", metadata={"x": "y"}
    )
    assert (updated.name, updated.instructions, updated.metadata) == (
        "renamed",
        "New rules.",
        {"x": "y"},
    )
    assert updated.description == "number 0"
    # It is a Loom assistant: the native API and the UI see it, config and all.
    native = loom.client("alice").get(f"/assistants/{_loom_id(first.id)}").json()
    assert native["name"] == "renamed"
    assert native["config"]["configurable"]["system_message"] == "New rules."
    assert native["config"]["configurable"]["model"] == "gpt-4o-mini"

    deleted = client.beta.assistants.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(first.id)
    # A native assistant is an Assistants assistant too.
    config = {"configurable": {"type": "agent", "system_message": "Native.", "tools": []}}
    r = loom.client("alice").post("/assistants", json={"name": "native", "config": config})
    native_id = "asst_" + uuid.UUID(r.json()["assistant_id"]).hex
    seen = client.beta.assistants.retrieve(native_id)
    assert (seen.name, seen.instructions, seen.model) == ("native", "Native.", "gpt-4o-mini")


def test_threads_and_messages(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "one", "metadata": {"n": "1"}},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
        ],
        metadata={"topic": "paging"},
    )
    assert client.beta.threads.retrieve(thread.id).metadata == {"topic": "paging"}
    for n in ("three", "four", "five"):
        client.beta.threads.messages.create(thread.id, role="user", content=n)
    asc = client.beta.threads.messages.list(thread.id, order="asc").data
    assert _texts(asc) == ["one", "two", "three", "four", "five"]
    assert asc[0].metadata == {"n": "1"} and asc[0].thread_id == thread.id
    desc = client.beta.threads.messages.list(thread.id).data
    assert [m.id for m in desc] == [m.id for m in reversed(asc)]

    # Paging with after, both orders.
    page = client.beta.threads.messages.list(thread.id, order="asc", limit=2, after=asc[1].id)
    assert _texts(page.data) == ["three", "four"] and page.has_more
    page = client.beta.threads.messages.list(thread.id, order="desc", limit=2, after=asc[3].id)
    assert _texts(page.data) == ["three", "two"] and page.has_more
    page = client.beta.threads.messages.list(thread.id, order="desc", limit=5, after=asc[1].id)
    assert _texts(page.data) == ["one"] and not page.has_more
    every = client.beta.threads.messages.list(thread.id, order="asc", limit=2)
    assert _texts(list(every)) == ["one", "two", "three", "four", "five"]
    page = client.beta.threads.messages.list(thread.id, order="asc", limit=2, before=asc[3].id)
    assert _texts(page.data) == ["two", "three"]

    got = client.beta.threads.messages.retrieve(asc[2].id, thread_id=thread.id)
    assert _texts([got]) == ["three"] and got.role == "user" and got.status == "completed"
    changed = client.beta.threads.messages.update(
        asc[2].id, thread_id=thread.id, metadata={"edited": "yes"}
    )
    assert changed.metadata == {"edited": "yes"}
    removed = client.beta.threads.messages.delete(asc[2].id, thread_id=thread.id)
    assert removed.deleted
    after_delete = client.beta.threads.messages.list(thread.id, order="asc").data
    assert _texts(after_delete) == ["one", "two", "four", "five"]
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(asc[2].id, thread_id=thread.id)

    updated = client.beta.threads.update(thread.id, metadata={"topic": "done"})
    assert updated.metadata == {"topic": "done"}
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


def test_thread_alternates_v1_and_native_runs(
    client: openai.OpenAI, loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    web = loom.client("alice")
    assistant = client.beta.assistants.create(model="gpt-4o-mini", instructions="Be terse.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "v1 question"}])
    fake_llm.reply(text="v1 answer")
    first = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert first.status == "completed"

    # The same thread, continued through the native API (OpenGPTs' stream).
    fake_llm.reply(text="native answer")
    native = stream_run(
        web,
        {
            "thread_id": _loom_id(thread.id),
            "input": {"messages": [{"type": "human", "content": "native question"}]},
        },
    )
    check_shape(native)
    assert native.data[-1][-1]["content"] == "native answer"

    # Back in /v1: the whole conversation, and a streamed run that sees all of it.
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert _texts(listed) == ["v1 question", "v1 answer", "native question", "native answer"]
    assert [m.run_id for m in listed] == [None, first.id, None, None]
    reply = fake_llm.reply(text="v1 again")
    client.beta.threads.messages.create(thread.id, role="user", content="third question")
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as s:
        assert "".join(s.text_deltas) == "v1 again"
    [request] = reply.requests
    assert [m["content"] for m in request["messages"]] == [
        "Be terse.",
        "v1 question",
        "v1 answer",
        "native question",
        "native answer",
        "third question",
    ]
    state = web.get(f"/threads/{_loom_id(thread.id)}/state").json()
    assert [m["content"] for m in state["values"]][-2:] == ["third question", "v1 again"]
    threads = web.get("/threads").json()
    mine = next(t for t in threads if t["thread_id"] == _loom_id(thread.id))
    assert mine["assistant_id"] == _loom_id(assistant.id) and mine["name"] == "v1 question"
