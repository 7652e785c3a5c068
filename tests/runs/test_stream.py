"""``POST /runs/stream``: the decoded events against exactly what the fake model sent."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, tokenize
from tests.runs.helpers import (
    RAGBOT,
    history,
    human,
    messages,
    new_thread,
    run_body,
    state,
)
from tests.runs.sse_client import apply_patches, check_shape, decode, stream_run

TEXTS = {
    "plain": "Hello from Loom, nice to meet you.",
    "unicode": "Grüße aus Köln — 東京タワー 🚀🧵 naïve café, Ωμέγα ∑ x² ≠ 0",
    "whitespace": "  two leading spaces\n\nthen a blank line,\ttabs   and trailing  \n",
    "markdown": (
        "# Title\n\nSome **bold** and _italic_ text:\n\n- item `one`\n- item [two](http://x.y)\n\n"
        "```python\nprint('hi')  # done\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    ),
    # SSE framing inside the content must not confuse the stream (JSON escapes the newlines).
    "sse-lookalike": 'event: end\n\ndata: {"fake": true}\n\n: ping\n\nstill the same message',
    "one-token": "Okay.",
}


def _prefixes(text: str) -> list[str]:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    return ["".join(tokens[: i + 1]) for i in range(len(tokens))]


@pytest.mark.parametrize("name", list(TEXTS))
def test_opengpts_format_token_by_token(loom: LoomServer, fake_llm: FakeOpenAI, name: str) -> None:
    text = TEXTS[name]
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=text)

    stream = stream_run(client, run_body(thread_id, "say it"))
    check_shape(stream)
    assert "error" not in stream.names
    assert stream.metadata == {"run_id": stream.run_id, "thread_id": thread_id}

    data = stream.data
    # the input first, then one event per token, then the finished message
    prefixes = _prefixes(text)
    assert len(data) == 1 + len(prefixes) + 1
    [first] = data[0]
    assert (first["type"], first["content"]) == ("human", "say it")
    for event in data[1:]:
        assert len(event) == 2
        assert event[0] == first  # earlier messages are re-sent unchanged
        assert event[-1]["type"] == "ai"
    ai_ids = {event[-1]["id"] for event in data[1:]}
    assert len(ai_ids) == 1
    contents = [event[-1]["content"] for event in data[1:]]
    assert contents == [*prefixes, text]
    for before, after in itertools.pairwise(contents):
        assert after.startswith(before)

    # The checkpointed message is exactly the streamed one.
    values = messages(client, thread_id)
    assert values == data[-1]
    assert values[-1]["content"] == text

    # The run is recorded as done by the time the stream ends (no polling).
    run = client.get(f"/runs/{stream.run_id}").json()
    assert (run["status"], run["error"]) == ("success", None)


@pytest.mark.parametrize("name", list(TEXTS))
def test_compact_format_rebuilds_state(loom: LoomServer, fake_llm: FakeOpenAI, name: str) -> None:
    text = TEXTS[name]
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="First answer.")
    check_shape(stream_run(client, run_body(thread_id, "first")))
    before = messages(client, thread_id)

    fake_llm.reply(text=text)
    stream = stream_run(client, run_body(thread_id, "second"), fmt="compact")
    check_shape(stream)
    assert "error" not in stream.names

    patches: list[dict[str, Any]] = [p for event in stream.data for p in event]
    deltas = [p["delta"] for p in patches if set(p) == {"id", "delta"}]
    tokens = tokenize(text)
    assert deltas == tokens[1:]  # the first token arrives with the message itself
    rebuilt: list[dict[str, Any]] = []
    for event in stream.data:
        assert isinstance(event, list) and event
        apply_patches(rebuilt, event)
    after = messages(client, thread_id)
    assert after[: len(before)] == before
    assert rebuilt == after[len(before) :]
    assert [(m["type"], m["content"]) for m in rebuilt] == [("human", "second"), ("ai", text)]

    # The streamed text alone (before the finished message replaces it) is exactly the text.
    ai_upserts = [p for p in patches if p.get("type") == "ai"]
    assert len(ai_upserts) == 2  # first token, then the finished message
    assert ai_upserts[0]["content"] + "".join(deltas) == text
    assert ai_upserts[0]["id"] == ai_upserts[1]["id"] == after[-1]["id"]
    assert ai_upserts[1] == after[-1]


def test_compact_is_smaller_than_opengpts(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    text = " ".join(f"word{i}" for i in range(50))
    assert len(tokenize(text)) == 50
    sizes: dict[str, int] = {}
    finals: dict[str, list[dict[str, Any]]] = {}
    for fmt in ("opengpts", "compact"):
        _, thread_id = new_thread(client)
        fake_llm.reply(text=text)
        stream = stream_run(client, run_body(thread_id, "count to fifty"), fmt=fmt)
        check_shape(stream)
        sizes[fmt] = stream.nbytes
        finals[fmt] = messages(client, thread_id)
    assert finals["opengpts"][-1]["content"] == finals["compact"][-1]["content"] == text
    # OpenGPTs re-sends the whole list per token (quadratic); compact sends deltas (linear).
    assert sizes["compact"] * 4 < sizes["opengpts"], sizes


def test_history_grows_by_checkpoints_per_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    assert history(client, thread_id) == []
    counts = []
    for i in range(3):
        fake_llm.reply(text=f"Answer {i}.")
        stream = stream_run(client, run_body(thread_id, f"question {i}"))
        check_shape(stream)
        assert "error" not in stream.names
        counts.append(len(history(client, thread_id, limit=5)))
    # A chatbot run writes three checkpoints: the input, the start, the model's answer.
    assert counts == [3, 6, 9]
    newest = history(client, thread_id)[0]
    assert newest["values"] == messages(client, thread_id)
    assert newest["next"] == []
    # The state updated by a client adds exactly one.
    r = client.post(f"/threads/{thread_id}/state", json={"values": [human("a note")]})
    assert r.status_code == 200, r.text
    assert len(history(client, thread_id)) == 10


def test_bare_list_input(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    """The OpenGPTs frontend sends the input as a bare list of messages."""
    client = loom.client("alice")
    assistant_id, thread_id = new_thread(client)
    fake_llm.reply(text="Bare list works.")
    message = {"content": "hello", "type": "human", "id": "my-own-id"}
    stream = stream_run(
        client, {"assistant_id": assistant_id, "thread_id": thread_id, "input": [message]}
    )
    check_shape(stream)
    assert "error" not in stream.names
    values = messages(client, thread_id)
    assert [(m["type"], m["content"]) for m in values] == [
        ("human", "hello"),
        ("ai", "Bare list works."),
    ]
    assert values[0]["id"] == "my-own-id"  # a client's id is kept
    assert stream.data[-1] == values


def test_null_input_on_fresh_thread(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    stream = stream_run(client, {"thread_id": thread_id, "input": None})
    check_shape(stream)
    assert stream.names == ["metadata", "end"]
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"
    assert fake_llm.chat_requests == []
    assert state(client, thread_id) == {"values": [], "next": []}
    # and the thread is usable afterwards
    fake_llm.reply(text="Now with input.")
    check_shape(stream_run(client, run_body(thread_id, "hi")))
    assert [m["content"] for m in messages(client, thread_id)] == ["hi", "Now with input."]


def test_null_input_on_finished_thread_does_nothing(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Done.")
    check_shape(stream_run(client, run_body(thread_id, "hi")))
    before = state(client, thread_id)
    requests_before = len(fake_llm.chat_requests)
    stream = stream_run(client, {"thread_id": thread_id, "input": None})
    assert stream.names == ["metadata", "end"]
    assert state(client, thread_id) == before
    assert len(fake_llm.chat_requests) == requests_before


def test_join_stream_replays_the_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    """``GET /runs/{id}/stream`` replays a recent run's events from the start."""
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Replay me, please.")
    stream = stream_run(client, run_body(thread_id, "hi"))
    check_shape(stream)
    for fmt in ("opengpts", "compact"):
        again = client.get(f"/runs/{stream.run_id}/stream", params={"format": fmt})
        assert again.status_code == 200
        events = decode(again.content)
        if fmt == "opengpts":
            assert events == stream.events
        else:
            rebuilt: list[dict[str, Any]] = []
            for event in events:
                if event.event == "data":
                    apply_patches(rebuilt, event.data)
            assert rebuilt == messages(client, thread_id)


def test_ragbot_stream_hides_the_query_rewrite(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client, RAGBOT)
    fake_llm.reply(text="First answer.")
    check_shape(stream_run(client, run_body(thread_id, "first question")))
    before = messages(client, thread_id)

    fake_llm.reply(text="REWRITTEN QUERY")
    fake_llm.reply(text="Second answer, streamed.")
    stream = stream_run(client, run_body(thread_id, "second question"), fmt="compact")
    check_shape(stream)
    assert "error" not in stream.names
    rebuilt: list[dict[str, Any]] = []
    for event in stream.data:
        apply_patches(rebuilt, event)
        for patch in event:  # the rewrite call's tokens are never streamed
            assert "REWRITTEN" not in patch.get("content", "") + patch.get("delta", "")
    after = messages(client, thread_id)
    assert rebuilt == after[len(before) :]
    assert [m["type"] for m in rebuilt] == ["human", "ai", "tool", "ai"]
    assert rebuilt[1]["tool_calls"][0]["args"] == {"query": "REWRITTEN QUERY"}
    assert rebuilt[-1]["content"] == "Second answer, streamed."
