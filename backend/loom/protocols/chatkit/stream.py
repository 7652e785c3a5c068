"""A run's events as ChatKit stream events, in the order a ChatKit client expects.

For an assistant message: ``thread.item.added`` (empty), ``assistant_message.content_part.added``,
``assistant_message.content_part.text_delta`` for each piece of text as the model writes it,
``assistant_message.content_part.done`` and ``thread.item.done`` with the whole text. The item
is announced with its first text, so a model message that only calls tools makes no empty
assistant message. Tool calls make a ``workflow`` item (``thread.item.added``), one task per
call, updated (``workflow.task.updated``) as each result arrives and done when all have;
calls continued after an approval update the finished item with ``thread.item.replaced``.
Items render exactly as :mod:`loom.protocols.chatkit.render` renders them on reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    WorkflowTaskUpdated,
)

from loom.protocols.chatkit import render
from loom.protocols.chatkit.render import Message
from loom.runs.events import (
    EndEvent,
    ErrorEvent,
    MessageDelta,
    MessageRemove,
    MessageUpsert,
    RunEvent,
)


@dataclass
class _Workflow:
    ai: Message
    created_at: datetime
    results: dict[str, Message] = field(default_factory=dict)
    done: bool = False  # the client has its thread.item.done: later changes replace it


class TurnStream:
    """Translates one run's events; keeps what a cancelled stream must save."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.error: tuple[str, str] | None = None
        self.status: str | None = None
        self._texts: dict[str, str] = {}  # assistant messages being written: id -> text so far
        self._announced: dict[str, datetime] = {}  # ... whose item the client has
        self._workflows: dict[str, _Workflow] = {}  # by AI message id
        self._owner: dict[str, str] = {}  # tool call id -> AI message id

    # -- state for the caller -----------------------------------------------------------------

    def partials(self) -> dict[str, str]:
        """The text of assistant messages shown but not finished (a cancelled stream)."""
        return {mid: self._texts.get(mid, "") for mid in self._announced}

    def resume(self, ai: Message, results: Mapping[str, Message], created_at: datetime) -> None:
        """Continue the tool calls of ``ai`` (after an approval): their item is done."""
        flow = _Workflow(ai=ai, created_at=created_at, results=dict(results), done=True)
        self._register(flow)

    def abandon(self) -> list[ThreadStreamEvent]:
        """The run failed: take back what it left unfinished."""
        events: list[ThreadStreamEvent] = [
            ThreadItemRemovedEvent(item_id=mid) for mid in self._announced
        ]
        self._announced.clear()
        self._texts.clear()
        return events

    def pause(self, ai: Message, results: Mapping[str, Message]) -> list[ThreadStreamEvent]:
        """The run stopped before its tools for approval: the calls and the approval card."""
        mid = str(ai["id"])
        flow = self._workflows.get(mid)
        created = flow.created_at if flow else _now()
        item = render.workflow_item(ai, results, self.thread_id, created, awaiting=True)
        events: list[ThreadStreamEvent] = [
            ThreadItemReplacedEvent(item=item)
            if flow is not None and flow.done
            else ThreadItemDoneEvent(item=item)
        ]
        if flow is not None:
            flow.done = True
        card = render.approval_item(ai, "pending", self.thread_id, _now())
        events.append(ThreadItemDoneEvent(item=card))
        return events

    # -- events -------------------------------------------------------------------------------

    def apply(self, event: RunEvent) -> list[ThreadStreamEvent]:
        if isinstance(event, MessageUpsert):
            return self._upsert(event.message, event.streaming)
        if isinstance(event, MessageDelta):
            return self._delta(event.id, event.delta)
        if isinstance(event, MessageRemove):
            self._texts.pop(event.id, None)
            if self._announced.pop(event.id, None) is not None:
                return [ThreadItemRemovedEvent(item_id=event.id)]
            return []
        if isinstance(event, ErrorEvent):
            self.error = (event.code, event.message)
        elif isinstance(event, EndEvent):
            self.status = event.status
        return []

    def _announce(self, mid: str, text: str) -> list[ThreadStreamEvent]:
        created = _now()
        self._announced[mid] = created
        empty = AssistantMessageItem(
            id=mid, thread_id=self.thread_id, created_at=created, content=[]
        )
        return [
            ThreadItemAddedEvent(item=empty),
            ThreadItemUpdatedEvent(
                item_id=mid,
                update=AssistantMessageContentPartAdded(
                    content_index=0, content=AssistantMessageContent(text="")
                ),
            ),
            _text_delta(mid, text),
        ]

    def _delta(self, mid: str, delta: str) -> list[ThreadStreamEvent]:
        if mid not in self._texts:
            return []
        self._texts[mid] += delta
        if mid in self._announced:
            return [_text_delta(mid, delta)] if delta else []
        if self._texts[mid]:
            return self._announce(mid, self._texts[mid])
        return []

    def _upsert(self, message: Message, streaming: bool) -> list[ThreadStreamEvent]:
        kind = message.get("type")
        mid = str(message.get("id"))
        if kind == "ai" and streaming:
            text = render.text_of(message.get("content"))
            self._texts[mid] = text
            return self._announce(mid, text) if text else []
        if kind == "ai":
            return self._finish(mid, message)
        if kind == "tool":
            return self._result(message)
        return []  # the turn's own input, already an item

    def _finish(self, mid: str, message: Message) -> list[ThreadStreamEvent]:
        events: list[ThreadStreamEvent] = []
        text = render.text_of(message.get("content"))
        self._texts.pop(mid, None)
        if mid not in self._announced and text.strip():
            events.extend(self._announce(mid, text))
        created = self._announced.pop(mid, None)
        if created is not None:
            final = AssistantMessageContent(text=text)
            events.append(
                ThreadItemUpdatedEvent(
                    item_id=mid,
                    update=AssistantMessageContentPartDone(content_index=0, content=final),
                )
            )
            done = render.assistant_item(mid, text, self.thread_id, created)
            events.append(ThreadItemDoneEvent(item=done))
        if render.calls_of(message):
            flow = _Workflow(ai=message, created_at=_now())
            self._register(flow)
            flow_item = render.workflow_item(message, {}, self.thread_id, flow.created_at)
            events.append(ThreadItemAddedEvent(item=flow_item))
        return events

    def _register(self, flow: _Workflow) -> None:
        mid = str(flow.ai["id"])
        self._workflows[mid] = flow
        for call in render.calls_of(flow.ai):
            self._owner[call.id] = mid

    def _result(self, message: Message) -> list[ThreadStreamEvent]:
        call_id = str(message.get("tool_call_id"))
        owner = self._owner.get(call_id)
        if owner is None:
            return []
        flow = self._workflows[owner]
        flow.results[call_id] = message
        calls = render.calls_of(flow.ai)
        item = render.workflow_item(flow.ai, flow.results, self.thread_id, flow.created_at)
        complete = all(c.id in flow.results for c in calls)
        if flow.done:
            return [ThreadItemReplacedEvent(item=item)] if complete else []
        index = next(i for i, c in enumerate(calls) if c.id == call_id)
        events: list[ThreadStreamEvent] = [
            ThreadItemUpdatedEvent(
                item_id=item.id,
                update=WorkflowTaskUpdated(task_index=index, task=item.workflow.tasks[index]),
            )
        ]
        if complete:
            flow.done = True
            events.append(ThreadItemDoneEvent(item=item))
        return events


def _text_delta(mid: str, delta: str) -> ThreadItemUpdatedEvent:
    return ThreadItemUpdatedEvent(
        item_id=mid,
        update=AssistantMessageContentPartTextDelta(content_index=0, delta=delta),
    )


def _now() -> datetime:
    return datetime.now(UTC)
