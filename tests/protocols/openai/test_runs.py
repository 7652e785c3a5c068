"""Runs through the official SDK: streamed with an event handler, polled, created with a
thread, listed, cancelled, refused on a busy thread; run steps; per-run overrides.

The SDK's own helpers do the checking (its stream helper raises on events out of order); the
text they rebuild is compared with exactly what the fake model sent.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent

from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPLY = "Looms weave threads into cloth, one pick at a time."


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.created_texts: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)


def _assistant(client: openai.OpenAI, **extra: Any) -> Any:
    return client.beta.assistants.create(
        model="gpt-4o-mini", name="Weaver", instructions="You explain weaving.", **extra
    )


def _texts(messages: Any) -> list[tuple[str, str]]:
    return [
        (m.role, "".join(c.text.value for c in m.content if c.type == "text")) for m in messages
    ]


def test_stream_with_event_handler(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="How do looms work?")
    reply = fake_llm.reply(text=REPLY)

    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        deltas = list(stream.text_deltas)
        run = stream.get_final_run()
        messages = stream.get_final_messages()

    assert "".join(deltas) == REPLY
    assert deltas == [t for t in REPLY.replace(" ", "\0 ").split("\0") if t]  # token by token
    assert run.status == "completed"
    assert run.thread_id == thread.id and run.assistant_id == assistant.id
    assert run.instructions == "You explain weaving."
    assert run.usage is not None and run.usage.completion_tokens > 0
    [message] = messages
    assert message.role == "assistant" and message.run_id == run.id
    assert _texts(messages) == [("assistant", REPLY)]
    deltas_count = len(deltas)
    assert handler.events == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        *["thread.message.delta"] * deltas_count,
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    # The model saw the assistant's instructions, then the thread.
    [request] = reply.requests
    assert request["messages"][0] == {"role": "system", "content": "You explain weaving."}
    assert request["messages"][-1] == {"role": "user", "content": "How do looms work?"}

    # The message the stream announced is the one the thread keeps, under the same id.
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.id for m in listed][-1] == message.id
    assert _texts(listed) == [("user", "How do looms work?"), ("assistant", REPLY)]
    assert listed[-1].run_id == run.id and listed[-1].assistant_id == assistant.id
    got = client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert _texts([got]) == [("assistant", REPLY)]


def test_create_and_poll_with_overrides(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "First question"}], metadata={"k": "v"}
    )
    assert thread.metadata == {"k": "v"}
    reply = fake_llm.reply(text="Polled answer.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        instructions="Answer in one line.",
        additional_instructions="Be kind.",
        additional_messages=[{"role": "user", "content": "Second question"}],
        model="gpt-4o",
        metadata={"run": "1"},
    )
    assert run.status == "completed"
    assert run.model == "gpt-4o" and run.metadata == {"run": "1"}
    assert run.instructions == "Answer in one line.\n\nBe kind."
    assert run.usage is not None and run.usage.total_tokens > 0
    [request] = reply.requests
    assert request["model"] == "gpt-4o"
    assert request["messages"][0]["content"] == "Answer in one line.\n\nBe kind."
    assert [m["content"] for m in request["messages"][1:]] == ["First question", "Second question"]

    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert _texts(listed) == [
        ("user", "First question"),
        ("user", "Second question"),
        ("assistant", "Polled answer."),
    ]
    assert listed[-1].run_id == run.id
    # The override was for this run only: the assistant is unchanged.
    again = client.beta.assistants.retrieve(assistant.id)
    assert again.model == "gpt-4o-mini" and again.instructions == "You explain weaving."

    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]


def test_create_and_run(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    fake_llm.reply(text="Made a thread and ran.")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Start here"}]},
    )
    assert run.status == "completed"
    listed = client.beta.threads.messages.list(run.thread_id, order="asc").data
    assert _texts(listed) == [("user", "Start here"), ("assistant", "Made a thread and ran.")]

    fake_llm.reply(text="Streamed from the start.")
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Stream it"}]},
        event_handler=handler,
    ) as stream:
        stream.until_done()
        assert "".join(
            c.text.value for c in stream.get_final_messages()[0].content if c.type == "text"
        ) == ("Streamed from the start.")
        assert stream.get_final_run().status == "completed"
    assert handler.events[:2] == ["thread.created", "thread.run.created"]


def test_run_steps(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Steps?"}])
    fake_llm.reply(text="One step.")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    [step] = steps
    assert step.type == "message_creation" and step.status == "completed"
    assert step.run_id == run.id and step.thread_id == thread.id
    [message] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == message.id
    got = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=run.id)
    assert got == step
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve("step_m_nope", thread_id=thread.id, run_id=run.id)


def test_busy_thread_and_cancel(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Talk slowly"}])
    fake_llm.reply(text=" ".join(["word"] * 200), token_delay=0.05)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status in ("queued", "in_progress")
    for _ in range(200):
        if client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress":
            break
        time.sleep(0.02)

    # A second run on a busy thread: 400, as OpenAI answered.
    with pytest.raises(openai.BadRequestError) as busy:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert "already has an active run" in busy.value.message
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="Interrupting")

    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "cancelled" and final.cancelled_at is not None
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)

    # The thread is free again.
    fake_llm.reply(text="Back.")
    again = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert again.status == "completed"
    listed = client.beta.threads.runs.list(thread.id, order="asc").data
    assert [(r.id, r.status) for r in listed] == [(run.id, "cancelled"), (again.id, "completed")]


def test_failed_run(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Fail"}])
    fake_llm.fail(400, message="the provider refused")
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        run = stream.get_final_run()
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert handler.events[-1] == "thread.run.failed"


def test_sampling_settings(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        temperature=0.2,
        top_p=0.5,
        response_format={"type": "json_object"},
    )
    assert (assistant.temperature, assistant.top_p) == (0.2, 0.5)
    assert assistant.response_format is not None
    assert assistant.response_format.type == "json_object"  # type: ignore[union-attr]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "JSON please"}])
    reply = fake_llm.reply(text='{"ok": true}')
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed" and (run.temperature, run.top_p) == (0.2, 0.5)
    [request] = reply.requests
    assert (request["temperature"], request["top_p"]) == (0.2, 0.5)
    assert request["response_format"] == {"type": "json_object"}

    # A run may change them for itself; "auto" goes back to the model's default.
    reply = fake_llm.reply(text="plain")
    client.beta.threads.messages.create(thread.id, role="user", content="Text now")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        temperature=1.5,
        response_format="auto",
        poll_interval_ms=50,
    )
    assert run.status == "completed" and run.temperature == 1.5
    [request] = reply.requests
    assert request["temperature"] == 1.5 and "response_format" not in request
    updated = client.beta.assistants.update(assistant.id, temperature=None)
    assert updated.temperature is None and updated.top_p == 0.5


def test_modify_run_metadata(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    fake_llm.reply(text="Hello.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"a": "1"}
    )
    updated = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"} and updated.status == "completed"


def test_raw_stream_framing(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    """On the wire: every event has an ``event:`` line and a JSON object, the stream ends with
    ``event: done`` / ``data: [DONE]``, and events carry Loom's sequence ids."""
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Raw?"}])
    fake_llm.reply(text="Raw answer.")
    r = httpx.post(
        f"{client.base_url}threads/{thread.id}/runs",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={"assistant_id": assistant.id, "stream": True},
        timeout=30,
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f.strip() and not f.startswith(":")]
    parsed = []
    for raw in frames:
        fields = dict(line.split(": ", 1) for line in raw.splitlines())
        parsed.append(fields)
    assert parsed[-1] == {"event": "done", "data": "[DONE]"}
    for fields in parsed[:-1]:
        assert fields["event"].startswith("thread.")
        assert json.loads(fields["data"])["id"]
    ids = [int(f["id"]) for f in parsed if "id" in f]
    assert ids == sorted(ids) and ids
