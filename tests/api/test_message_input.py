"""The native API's message input is typed: the OpenAPI document says what Loom accepts."""

from __future__ import annotations

from typing import Any

from tests.conftest import LoomServer
from tests.runs.helpers import new_thread, state
from tests.runs.sse_client import stream_run


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def test_state_values_are_typed_messages(loom: LoomServer) -> None:
    client = loom.client("alice")
    doc = client.get("/openapi.json").json()
    tool = _schema(doc, "TypedToolMessage")
    assert set(tool["required"]) == {"type", "content", "tool_call_id"}
    assert _schema(doc, "ToolCallIn")["required"] == ["name", "args", "id"]
    _, thread_id = new_thread(client)
    bad: list[Any] = [
        {},  # no messages
        [{"type": "tool", "content": "x"}],  # a tool message answers a call
        [{"type": "remove", "content": "x"}],
        [{"type": "ai", "content": "x", "tool_calls": [{"name": "f", "args": {}}]}],
        [{"type": "human", "content": "x", "additional_kwargs": {"n": 10**400}}],  # no float
    ]
    for values in bad:
        r = client.post(f"/threads/{thread_id}/state", json={"values": values})
        assert r.status_code == 422, (values, r.text)
        assert r.json()["detail"][0]["loc"][:2] == ["body", "values"], r.text
    ok = [
        {"type": "human", "content": "a"},
        {"role": "assistant", "content": "b", "type": "ignored when role is set"},
        "c",
    ]
    r = client.post(f"/threads/{thread_id}/state", json={"values": {"messages": ok}})
    assert r.status_code == 200, r.text
    got = [(m["type"], m["content"]) for m in state(client, thread_id)["values"]]
    assert got == [("human", "a"), ("ai", "b"), ("human", "c")]
    # Checkpoints (msgpack) and streams (orjson) carry 64-bit integers at most (a bigger one
    # was a 500): it is kept as the nearest float.
    big = {"type": "human", "content": "d", "additional_kwargs": {"n": 2**64, "m": 2**64 - 1}}
    r = client.post(f"/threads/{thread_id}/state", json={"values": [big]})
    assert r.status_code == 200, r.text
    last = state(client, thread_id)["values"][-1]
    assert last["additional_kwargs"] == {"n": float(2**64), "m": 2**64 - 1}
    assert isinstance(last["additional_kwargs"]["m"], int)


def test_a_run_streams_a_message_with_a_big_integer(loom: LoomServer) -> None:
    # The run's input goes through jsonb (which writes 1.2e21 back as 1200000000000000000000)
    # to the stream (orjson) and the checkpoint (msgpack): it was a stream cut off mid-way.
    client = loom.client("alice")
    assistant_id, thread_id = new_thread(client)
    message = {"type": "human", "content": "hi", "additional_kwargs": {"n": 2**70}}
    body = {"assistant_id": assistant_id, "thread_id": thread_id, "input": [message]}
    stream = stream_run(client, body, fmt="compact")
    assert stream.names[0] == "metadata" and stream.names[-1] == "end", stream.names
    assert stream.errors == []
    sent = stream.data[0][0]
    assert sent["content"] == "hi" and sent["additional_kwargs"] == {"n": float(2**70)}
    assert state(client, thread_id)["values"][0]["additional_kwargs"] == {"n": float(2**70)}


def test_number_bounds_are_json_schema_keywords(loom: LoomServer) -> None:
    # Bounds written after the JSON-number validator came out as pydantic's "ge"/"le" keys,
    # which no fuzzer or client reads: a valid limit looked unbounded.
    doc = loom.client("alice").get("/openapi.json").json()
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{path}/{k}" for k in ("ge", "le", "gt", "lt") if k in node)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}/{index}")

    walk(doc, "")
    assert found == []
    limit = _schema(doc, "HistoryIn")["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 200)
