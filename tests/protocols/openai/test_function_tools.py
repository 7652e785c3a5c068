"""Function tools through the official SDK: the run stops at ``requires_action``, the client
submits outputs (streamed or polled), the run completes; server-side tools in the same reply
run on the server; wrong outputs and cancelling a waiting run."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent

from tests.fakes.openai_server import FakeOpenAI, ToolCall

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)


def _thread(client: openai.OpenAI, text: str) -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": text}])


def test_function_round_trip_streamed(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    assert [t.type for t in assistant.tools] == ["function"]
    assert assistant.tools[0].function.name == "get_weather"
    thread = _thread(client, "Weather in Paris?")
    fake_llm.reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_paris")])

    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action"
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert (call.id, call.function.name) == ("call_paris", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.events[-3:] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.requires_action",
    ]
    # No message for a reply that only calls a tool; the thread is waiting.
    assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == (
        "requires_action"
    )

    answer = fake_llm.reply(text="It is sunny in Paris.")
    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": "call_paris", "output": "sunny, 21 C"}],
        event_handler=second,
    ) as stream:
        text = "".join(stream.text_deltas)
        final = stream.get_final_run()
    assert text == "It is sunny in Paris."
    assert final.id == run.id and final.status == "completed"
    assert second.events[0] == "thread.run.step.completed"
    assert second.events[-1] == "thread.run.completed"
    # The model got the call and the client's output.
    [request] = answer.requests
    assert request["messages"][-1] == {
        "role": "tool",
        "content": "sunny, 21 C",
        "tool_call_id": "call_paris",
    }

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    [detail] = steps[0].step_details.tool_calls  # type: ignore[union-attr]
    assert detail.type == "function"
    assert detail.function.name == "get_weather" and detail.function.output == "sunny, 21 C"
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[-1].run_id == run.id


def test_client_and_server_tools_in_one_reply(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    # web_fetch is a Loom tool (loom_tools): it runs on the server (and refuses a loopback
    # address, so nothing leaves the machine); get_weather runs on the client.
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[WEATHER],
        extra_body={"loom_tools": [{"type": "web_fetch"}]},
    )
    assert assistant.model_extra is not None
    assert assistant.model_extra["loom_tools"] == ["web_fetch"]
    thread = _thread(client, "Weather and history of Paris?")
    fake_llm.reply(
        tool_calls=[
            ToolCall("web_fetch", {"url": "http://127.0.0.1:9/paris"}, id="call_fetch"),
            ToolCall("get_weather", {"city": "Paris"}, id="call_weather"),
        ]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    assert [c.id for c in run.required_action.submit_tool_outputs.tool_calls] == ["call_weather"]

    fake_llm.reply(text="Done.")
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": "call_weather", "output": "rain"}],
        poll_interval_ms=50,
    )
    assert final.status == "completed"
    [step] = [
        s
        for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
        if s.type == "tool_calls"
    ]
    calls = {c.id: c for c in step.step_details.tool_calls}  # type: ignore[union-attr]
    assert calls["call_weather"].function.output == "rain"  # type: ignore[union-attr]
    fetched = calls["call_fetch"].function.output  # type: ignore[union-attr]
    assert fetched is not None and fetched.startswith("Error:")


def test_wrong_outputs_and_cancel_while_waiting(
    client: openai.OpenAI, fake_llm: FakeOpenAI
) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    thread = _thread(client, "Weather in Oslo?")
    fake_llm.reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_oslo")])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": "nope", "output": ""}],
        )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id, run_id=run.id, tool_outputs=[]
        )

    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": "call_oslo", "output": "snow"}],
        )
    # The thread goes on: the model is told the call was cancelled.
    client.beta.threads.messages.create(thread.id, role="user", content="Never mind.")
    reply = fake_llm.reply(text="Fine.")
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed"
    [request] = reply.requests
    tool = next(m for m in request["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == "call_oslo" and "cancelled" in tool["content"]


def test_run_level_tools_override(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = _thread(client, "Weather in Rome?")
    reply = fake_llm.reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"}, id="call_r")])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=[WEATHER], poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert [t.type for t in run.tools] == ["function"]
    [request] = reply.requests
    assert [t["function"]["name"] for t in request["tools"]] == ["get_weather"]
    fake_llm.reply(text="Warm.")
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": "call_r", "output": "30 C"}],
        poll_interval_ms=50,
    )
    assert final.status == "completed"
    assert client.beta.assistants.retrieve(assistant.id).tools == []
