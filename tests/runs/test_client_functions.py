"""Client-side functions through the native API: the run stops before ``client_tools``, the
client posts the outputs as tool messages and continues with ``input: null``; server-side
calls of the same reply run first; continuing without outputs answers them with an error."""

from __future__ import annotations

from typing import Any

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, ToolCall
from tests.runs.helpers import agent_config, messages, new_thread, run_body, state, wait_run
from tests.runs.sse_client import stream_run

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks a word up in the client's dictionary",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
    },
}


def _types(values: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in values]


def test_client_function_round_trip(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client, agent_config([LOOKUP, "Web page fetcher"]))
    first = fake_llm.reply(
        tool_calls=[
            ToolCall("web_fetch", {"url": "http://127.0.0.1:9/x"}, id="call_server"),
            ToolCall("lookup", {"word": "loom"}, id="call_client"),
        ]
    )
    stream = stream_run(client, run_body(thread_id, "Define loom"), fmt="compact")
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "interrupted"
    assert state(client, thread_id)["next"] == ["client_tools"]
    values = messages(client, thread_id)
    # The server-side call ran; the client's waits.
    assert _types(values) == ["human", "ai", "tool"]
    assert values[2]["tool_call_id"] == "call_server"
    [request] = first.requests
    assert {t["function"]["name"] for t in request["tools"]} == {"lookup", "web_fetch"}

    # A thread waiting for outputs still takes them like any state update.
    tool = {"type": "tool", "tool_call_id": "call_client", "name": "lookup", "content": "a frame"}
    r = client.post(f"/threads/{thread_id}/state", json={"values": [tool]})
    assert r.status_code == 200 and r.json()["next"] == ["agent"]
    answer = fake_llm.reply(text="A loom is a frame for weaving.")
    r = client.post("/runs", json={"thread_id": thread_id, "input": None})
    assert wait_run(client, r.json()["run_id"])["status"] == "success"
    assert _types(messages(client, thread_id)) == ["human", "ai", "tool", "tool", "ai"]
    [request] = answer.requests
    assert request["messages"][-1]["content"] == "a frame"


def test_continuing_without_outputs(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client, agent_config([LOOKUP]))
    fake_llm.reply(tool_calls=[ToolCall("lookup", {"word": "warp"}, id="call_w")])
    stream = stream_run(client, run_body(thread_id, "Define warp"), fmt="compact")
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "interrupted"
    answer = fake_llm.reply(text="I could not look it up.")
    r = client.post("/runs", json={"thread_id": thread_id, "input": None})
    assert wait_run(client, r.json()["run_id"])["status"] == "success"
    values = messages(client, thread_id)
    assert _types(values) == ["human", "ai", "tool", "ai"]
    assert values[2]["status"] == "error" and values[2]["tool_call_id"] == "call_w"
    [request] = answer.requests
    assert "no output" in request["messages"][-1]["content"]
