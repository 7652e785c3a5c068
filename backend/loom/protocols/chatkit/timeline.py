"""Which items a thread lists, in what order: its LangGraph messages decide.

The thread's messages (read through ``ThreadStateService``) are the backbone. An item that
shows a message (``render.backing_message``) is listed at that message's place and rendered
from it, so text finished, edited or rewound elsewhere (``POST /runs``, Loom's UI, a fork)
shows as it is in the thread. Items no message backs (and message items whose message has
not reached the thread yet, such as the user message of a turn just starting) follow the item
stored before them. An item whose message was in the thread and is gone (a fork or rollback
rewound it away) is not listed; neither is an item deleted through ChatKit.

Messages that have no item yet (written by a native run) get one, made here and stored by
the caller, so ids and ``created_at`` stay stable from one read to the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatkit.types import (
    AssistantMessageItem,
    ThreadItem,
    UserMessageItem,
    WidgetItem,
)
from pydantic import TypeAdapter

from loom.protocols.chatkit import render
from loom.protocols.chatkit.render import Message

ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)


@dataclass
class StoredItem:
    """One ``chatkit_item`` row."""

    item_id: str
    seq: int
    kind: str
    message_id: str | None
    seen: bool
    deleted: bool
    data: dict[str, Any]
    created_at: datetime

    def item(self) -> ThreadItem:
        return ITEM.validate_python(self.data)


@dataclass(frozen=True)
class Expected:
    """An item a message should have: its kind, id and message."""

    kind: str
    item_id: str
    message: Message


class Snapshot:
    """A thread's messages, with the lookups the timeline needs."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self.messages = [m for m in render.messages_of(state) if m.get("id")]
        self.position = {str(m["id"]): i for i, m in enumerate(self.messages)}
        self.results = render.results_of(self.messages)
        self.paused = render.pending_calls(state)

    def has(self, message_id: str | None) -> bool:
        return message_id is not None and message_id in self.position

    def message(self, message_id: str) -> Message:
        return self.messages[self.position[message_id]]

    def expected(self) -> list[Expected]:
        """Every item the messages call for, in order."""
        out: list[Expected] = []
        for m in self.messages:
            mid = str(m["id"])
            if m.get("type") == "human":
                out.append(Expected("user_message", mid, m))
            elif m.get("type") == "ai":
                if render.text_of(m.get("content")).strip():
                    out.append(Expected("assistant_message", mid, m))
                if render.calls_of(m):
                    out.append(Expected("workflow", render.workflow_id(mid), m))
                if self.paused is m:
                    out.append(Expected("widget", render.approval_id(mid), m))
        return out

    def derive(self, expected: Expected, thread_id: str, now: datetime) -> ThreadItem:
        """A new item for a message that has none."""
        m = expected.message
        if expected.kind == "user_message":
            return render.user_item(m, thread_id, now, None)
        if expected.kind == "assistant_message":
            text = render.text_of(m.get("content"))
            return render.assistant_item(str(m["id"]), text, thread_id, now)
        if expected.kind == "workflow":
            return render.workflow_item(m, self.results, thread_id, now, self.paused is m)
        return render.approval_item(m, self._approval(m, None), thread_id, now)

    def _approval(self, ai: Message, stored: WidgetItem | None) -> render.ApprovalStatus:
        status = render.approval_status(ai, self.results, self.paused is ai)
        if status == "pending" and stored is not None:
            # Decided through ChatKit and its run not finished yet: keep the decision shown.
            decided = render.decision_of(stored)
            if decided is not None:
                return decided
        return status

    def refresh(self, row: StoredItem, thread_id: str) -> ThreadItem:
        """A stored item as its message now is."""
        item = row.item()
        if row.message_id is None or not self.has(row.message_id):
            return item
        m = self.message(row.message_id)
        if isinstance(item, UserMessageItem):
            return render.user_item(m, thread_id, item.created_at, item)
        if isinstance(item, AssistantMessageItem):
            text = render.text_of(m.get("content"))
            if "".join(c.text for c in item.content) == text:
                return item
            return render.assistant_item(item.id, text, thread_id, item.created_at)
        if item.type == "workflow":
            return render.workflow_item(
                m, self.results, thread_id, item.created_at, self.paused is m
            )
        if isinstance(item, WidgetItem) and row.item_id == render.approval_id(row.message_id):
            status = self._approval(m, item)
            return render.approval_item(m, status, thread_id, item.created_at)
        return item


def place(rows: Sequence[StoredItem], snapshot: Snapshot) -> list[StoredItem]:
    """The rows to list, in order (see the module docstring)."""
    slots: dict[int, list[StoredItem]] = defaultdict(list)
    followers: dict[str | None, list[StoredItem]] = defaultdict(list)
    anchor: str | None = None
    for row in sorted(rows, key=lambda r: r.seq):
        if snapshot.has(row.message_id):
            assert row.message_id is not None
            slots[snapshot.position[row.message_id]].append(row)
        elif row.message_id is not None and row.seen:
            continue  # rewound away: not listed, and nothing hangs from it
        else:
            followers[anchor].append(row)
        anchor = row.item_id
    out: list[StoredItem] = []

    def emit(row: StoredItem) -> None:
        if not row.deleted:
            out.append(row)
        for follower in followers.get(row.item_id, ()):
            emit(follower)

    for row in followers.get(None, ()):
        emit(row)
    for index in range(len(snapshot.messages)):
        for row in slots.get(index, ()):
            emit(row)
    return out
