"""The ``agent`` type when a new message arrives while tool calls are still unanswered.

The thread keeps the AI message whose calls never ran; the model's prompt answers them with
error results (the provider rejects unanswered calls), and the thread's state is not changed.
"""

from __future__ import annotations

from loom.agents.types.agent import CANCELLED_CALL
from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, ToolCall
from tests.runs.helpers import agent_config, new_thread, run_body, state
from tests.runs.sse_client import check_shape, stream_run


def test_a_new_message_after_an_unapproved_tool_call(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    config = agent_config(["Web page fetcher"], **{"type==agent/interrupt_before_action": True})
    _, thread_id = new_thread(client, config)
    fake_llm.reply(tool_calls=[ToolCall("web_fetch", {"url": "http://example.test/"}, id="call_1")])
    stream = stream_run(client, run_body(thread_id, "fetch it"))
    check_shape(stream)
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "interrupted"
    assert state(client, thread_id)["next"] == ["action"]

    # The user does not approve the call and writes something else instead.
    final = fake_llm.reply(text="Hello!")
    stream = stream_run(client, run_body(thread_id, "never mind, just say hello"))
    check_shape(stream)
    assert "error" not in stream.names
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"

    [request] = final.requests
    sent = [m for m in request["messages"] if m["role"] != "system"]
    assert [(m["role"], m.get("tool_call_id")) for m in sent] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_1"),
        ("user", None),
    ]
    assert sent[2]["content"] == CANCELLED_CALL
    assert sent[3]["content"] == "never mind, just say hello"
    assert [c["id"] for c in request["messages"][-3]["tool_calls"]] == ["call_1"]

    current = state(client, thread_id)
    assert current["next"] == []
    assert [m["type"] for m in current["values"]] == ["human", "ai", "human", "ai"]
    assert current["values"][-1]["content"] == "Hello!"
