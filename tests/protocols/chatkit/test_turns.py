"""Turns that are more than one reply: tools, approvals, retry (a fork), cancellation."""

from __future__ import annotations

from typing import Any

from chatkit.actions import Action
from chatkit.types import (
    AssistantMessageItem,
    ErrorEvent,
    ThreadCustomActionParams,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadRetryAfterItemParams,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    UserMessageItem,
    WidgetItem,
    WorkflowItem,
    WorkflowTaskUpdated,
)

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, ToolCall, tokenize
from tests.protocols.chatkit.helpers import (
    ChatKit,
    add_req,
    assistant_texts,
    conversation,
    create_req,
    created_thread,
    deltas,
    done_items,
    native_conversation,
    wait_for,
)
from tests.runs.helpers import create_assistant, history, messages, state, wait_run

RETRIEVAL = [{"type": "retrieval"}]


def _assistant(loom: LoomServer, user: str, **extra: Any) -> str:
    config = {"configurable": {"type": "agent", "tools": RETRIEVAL, **extra}}
    return create_assistant(loom.client(user), config, name="tools")


def test_server_tool_calls_are_a_workflow(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    assistant_id = _assistant(loom, "alice")
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "loom"}, id="call_1")])
    fake_llm.reply(text="Nothing was uploaded.")
    events = ck.stream(create_req("search my files", assistant_id=assistant_id))
    thread_id = created_thread(events)
    assert loom.client("alice").get(f"/threads/{thread_id}").json()["assistant_id"] == assistant_id

    [flow] = [i for i in done_items(events) if isinstance(i, WorkflowItem)]
    [task] = flow.workflow.tasks
    assert task.type == "custom" and task.title == "retrieval"
    assert task.status_indicator == "complete"
    assert task.content is not None and '"query": "loom"' in task.content
    assert "No passages in the uploaded documents" in task.content
    updates = [e for e in events if isinstance(e, ThreadItemUpdatedEvent) and e.item_id == flow.id]
    assert [type(u.update) for u in updates] == [WorkflowTaskUpdated]
    assert "".join(deltas(events)) == "Nothing was uploaded."
    # Order of items: user, workflow, answer; the same on reload.
    kinds = [i.type for i in ck.all_items(thread_id)]
    assert kinds == ["user_message", "workflow", "assistant_message"]
    assert ck.all_items(thread_id)[1] == flow.model_copy(
        update={"created_at": ck.all_items(thread_id)[1].created_at}
    )


def _approval(events: list[Any]) -> WidgetItem:
    [card] = [i for i in done_items(events) if isinstance(i, WidgetItem)]
    assert card.id.startswith("approval_")
    return card


def _act(ck: ChatKit, thread_id: str, card: WidgetItem, kind: str) -> list[Any]:
    message_id = card.id.removeprefix("approval_")
    action = Action[str, Any](type=kind, payload={"message_id": message_id})
    req = ThreadsCustomActionReq(
        params=ThreadCustomActionParams(thread_id=thread_id, item_id=card.id, action=action)
    )
    return ck.stream(req)


def test_approval_with_a_widget(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    assistant_id = _assistant(loom, "alice", interrupt_before_action=True)
    ck = ChatKit(loom.client("alice"))
    native = loom.client("alice")
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "q1"}, id="call_a")])
    events = ck.stream(create_req("look it up", assistant_id=assistant_id))
    thread_id = created_thread(events)
    card = _approval(events)
    assert state(native, thread_id)["next"] == ["action"]
    assert "Approve" in card.model_dump_json()
    flow = next(i for i in done_items(events) if isinstance(i, WorkflowItem))
    assert flow.workflow.tasks[0].status_indicator == "none"  # waiting
    assert [i.type for i in ck.all_items(thread_id)] == ["user_message", "workflow", "widget"]

    # A stale or unknown action is refused in the stream.
    wrong = Action[str, Any](type="loom.approve", payload={"message_id": "nope"})
    req = ThreadsCustomActionReq(
        params=ThreadCustomActionParams(thread_id=thread_id, item_id=card.id, action=wrong)
    )
    assert any(isinstance(e, ErrorEvent) and not e.allow_retry for e in ck.stream(req))
    unknown = Action[str, Any](type="something.else", payload={})
    req = ThreadsCustomActionReq(
        params=ThreadCustomActionParams(thread_id=thread_id, item_id=card.id, action=unknown)
    )
    assert any(isinstance(e, ErrorEvent) and not e.allow_retry for e in ck.stream(req))

    fake_llm.reply(text="Found nothing, approved.")
    events = _act(ck, thread_id, card, "loom.approve")
    replaced = [e.item for e in events if isinstance(e, ThreadItemReplacedEvent)]
    assert replaced[0].id == card.id and "Approved" in replaced[0].model_dump_json()
    assert "Approve?" not in replaced[0].model_dump_json()
    done_flow = [i for i in replaced if isinstance(i, WorkflowItem)]
    assert done_flow and done_flow[-1].workflow.tasks[0].status_indicator == "complete"
    assert "".join(deltas(events)) == "Found nothing, approved."
    values = messages(native, thread_id)
    assert [m["type"] for m in values] == ["human", "ai", "tool", "ai"]
    items = ck.all_items(thread_id)
    assert [i.type for i in items] == ["user_message", "workflow", "widget", "assistant_message"]
    widget = items[2]
    assert isinstance(widget, WidgetItem) and widget.copy_text
    assert widget.copy_text.startswith("Approved")

    # Reject: the calls are answered as rejected, then the model goes on.
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "q2"}, id="call_b")])
    card2 = _approval(ck.stream(add_req(thread_id, "and this?")))
    fake_llm.reply(text="Understood, I will not search.")
    events = _act(ck, thread_id, card2, "loom.reject")
    assert "".join(deltas(events)) == "Understood, I will not search."
    tool = [m for m in messages(native, thread_id) if m["type"] == "tool"][-1]
    assert tool["tool_call_id"] == "call_b" and "rejected" in tool["content"]
    last_card = [i for i in ck.all_items(thread_id) if isinstance(i, WidgetItem)][-1]
    assert last_card.copy_text and last_card.copy_text.startswith("Rejected")


def test_native_interrupt_shows_the_approval_card(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    assistant_id = _assistant(loom, "alice", interrupt_before_action=True)
    native = loom.client("alice")
    r = native.post("/threads", json={"name": "n", "assistant_id": assistant_id})
    thread_id = r.json()["thread_id"]
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "x"}, id="call_n")])
    run = native.post(
        "/runs", json={"thread_id": thread_id, "input": [{"type": "human", "content": "go"}]}
    )
    wait_run(native, run.json()["run_id"])
    ck = ChatKit(native)
    items = ck.all_items(thread_id)
    assert [i.type for i in items] == ["user_message", "workflow", "widget"]
    fake_llm.reply(text="Done natively approved.")
    assert isinstance(items[2], WidgetItem)
    events = _act(ck, thread_id, items[2], "loom.approve")
    assert "".join(deltas(events)) == "Done natively approved."


def test_retry_after_item_forks_the_state(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    native = loom.client("alice")
    fake_llm.reply(text="One.")
    thread_id = created_thread(ck.stream(create_req("first")))
    fake_llm.reply(text="Two.")
    ck.stream(add_req(thread_id, "second"))
    fake_llm.reply(text="Three.")
    ck.stream(add_req(thread_id, "third"))
    items = ck.all_items(thread_id)
    second = items[2]
    assert isinstance(second, UserMessageItem)
    checkpoints_before = len(history(native, thread_id))

    fake_llm.reply(text="Two, again.")
    req = ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=thread_id, item_id=second.id)
    )
    events = ck.stream(req)
    assert "".join(deltas(events)) == "Two, again."
    expected = [
        ("user", "first"),
        ("assistant", "One."),
        ("user", "second"),
        ("assistant", "Two, again."),
    ]
    assert conversation(ck.all_items(thread_id)) == expected
    assert native_conversation(messages(native, thread_id)) == expected
    assert messages(native, thread_id)[2]["id"] == second.id
    # The old branch is still in the history: the retry forked, it did not rewrite.
    assert len(history(native, thread_id)) > checkpoints_before
    # The model saw the conversation up to the retried message only.
    prompt = fake_llm.chat_requests[-1]["messages"]
    assert [m["content"] for m in prompt if m["role"] != "system"] == ["first", "One.", "second"]

    # Retrying the very first message starts the thread over.
    fake_llm.reply(text="One, again.")
    first = ck.all_items(thread_id)[0]
    req = ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=thread_id, item_id=first.id)
    )
    assert "".join(deltas(ck.stream(req))) == "One, again."
    expected = [("user", "first"), ("assistant", "One, again.")]
    assert conversation(ck.all_items(thread_id)) == expected
    assert native_conversation(messages(native, thread_id)) == expected


SLOW = " ".join(f"w{i}" for i in range(60))


def test_cancel_mid_stream_keeps_the_partial_reply(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    native = loom.client("alice")
    fake_llm.reply(text="Short.")
    thread_id = created_thread(ck.stream(create_req("start")))
    fake_llm.reply(text=SLOW, token_delay=0.05)
    response, events = ck.open(add_req(thread_id, "talk slowly"))
    got: list[str] = []
    for event in events:
        if isinstance(event, ThreadItemUpdatedEvent) and event.update.type.endswith("text_delta"):
            got.append(event.update.delta)  # type: ignore[union-attr]
            if len(got) == 5:
                break
    response.close()  # ChatKit's stop button: the request is aborted

    streamed = "".join(got)
    assert streamed == "".join(tokenize(SLOW)[:5])

    def kept() -> Any:
        answers = assistant_texts(ck.all_items(thread_id))
        return answers if len(answers) == 2 else None

    answers = wait_for(kept)
    partial = answers[-1]
    assert partial.startswith(streamed) and SLOW.startswith(partial) and partial != SLOW
    runs = native.get(f"/threads/{thread_id}/state").json()
    assert native_conversation(runs["values"])[-1] == ("assistant", partial)
    # The thread goes on from the partial reply.
    fake_llm.reply(text="Continuing.")
    assert "".join(deltas(ck.stream(add_req(thread_id, "go on")))) == "Continuing."
    assert conversation(ck.all_items(thread_id))[-3:] == [
        ("assistant", partial),
        ("user", "go on"),
        ("assistant", "Continuing."),
    ]


def test_disconnect_with_continue_finishes_the_reply(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text=SLOW, token_delay=0.02)
    response, events = ck.open(create_req("keep going", on_disconnect="continue"))
    thread_id = ""
    for event in events:
        if event.type == "thread.created":
            thread_id = event.thread.id  # type: ignore[union-attr]
        if isinstance(event, ThreadItemUpdatedEvent) and event.update.type.endswith("delta"):
            break
    response.close()
    answers = wait_for(lambda: [a for a in assistant_texts(ck.all_items(thread_id)) if a == SLOW])
    assert answers == [SLOW]


def test_a_failed_reply_keeps_its_text(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    """A model that fails mid-reply: the reply so far stays (the run keeps it, marked failed,
    for every protocol), then the error event."""
    ck = ChatKit(loom.client("alice"))
    for _ in range(3):
        fake_llm.fault("cut", after_tokens=3, text=SLOW)
    events = ck.stream(create_req("flaky"))
    assert any(isinstance(e, ErrorEvent) for e in events)
    thread_id = created_thread(events)
    items = ck.all_items(thread_id)
    assert [i.type for i in items] == ["user_message", "assistant_message"]
    [done] = [
        e.item
        for e in events
        if isinstance(e, ThreadItemDoneEvent) and isinstance(e.item, AssistantMessageItem)
    ]
    assert SLOW.startswith(done.content[0].text) and done.content[0].text.strip()
    removed = {e.item_id for e in events if isinstance(e, ThreadItemRemovedEvent)}
    assert done.id not in removed
