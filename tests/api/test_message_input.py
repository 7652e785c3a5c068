"""The native API's message input is typed: the OpenAPI document says what Loom accepts."""

from __future__ import annotations

from typing import Any

from tests.conftest import LoomServer
from tests.runs.helpers import new_thread, state


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
        # checkpoints are msgpack: integers beyond 64 bits were a 500
        [{"type": "human", "content": "x", "extra": 2**64}],
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
