"""A Loom run's events as an Assistants stream (``stream: true``).

Loom's core events (``MessageUpsert`` / ``MessageDelta`` / ``MessageRemove`` / ``ErrorEvent`` /
``EndEvent``, from ``RunService.follow``) become OpenAI's, in the order the SDK's stream helper
requires:

``thread.run.created`` -> ``thread.run.queued`` -> ``thread.run.in_progress`` ->
per AI message with text: ``thread.run.step.created`` / ``in_progress`` (message_creation) ->
``thread.message.created`` / ``in_progress`` -> ``thread.message.delta``... ->
``thread.message.completed`` -> ``thread.run.step.completed``;
per AI message with tool calls: a ``tool_calls`` step, completed once every call has its
output (the calls the client must answer keep it ``in_progress``) ->
``thread.run.completed`` (or ``requires_action``, ``failed``, ``cancelled``, ``incomplete``)
-> ``event: done`` / ``data: [DONE]``.

A message is announced at its first text, so an AI message that only calls tools is a step,
never a message. Every frame carries the Loom event's sequence number in ``id:``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from openai.types.beta.threads import Message, MessageDeltaEvent
from pydantic import BaseModel

from loom.runs.events import Envelope, MessageDelta, MessageRemove, MessageUpsert
from loom.sse import frame

from . import ids
from .convert import message_object, passages_of, text_of
from .objects import StepIds, message_step, tool_outputs, tool_step

DONE = frame("done", raw="[DONE]")


def event(name: str, data: BaseModel, seq: int | None = None) -> bytes:
    return frame(name, data.model_dump(mode="json", warnings=False), id=seq)


def _now() -> int:
    return int(time.time())


class _Open:
    """An AI message announced to the client and still being written."""

    def __init__(self, message: Mapping[str, Any], created: int) -> None:
        self.message = dict(message)
        self.created = created
        self.text = ""


class EventWriter:
    """Translates one Loom run's events; :meth:`finish` closes what is still open."""

    def __init__(self, step_ids: StepIds, earlier: Sequence[dict[str, Any]] = ()) -> None:
        self._ids = step_ids
        self._streaming: dict[str, dict[str, Any]] = {}  # started, not yet announced
        self._open: dict[str, _Open] = {}
        self._tool_step: tuple[dict[str, Any], int] | None = None  # (AI message, created)
        # Complete messages since the user's last one (earlier parts of the run, then this
        # one's), in order: the searches an answer may cite.
        self._seen: list[dict[str, Any]] = list(earlier)

    # -- building blocks ----------------------------------------------------------------------

    def _message(self, message: Mapping[str, Any], created: int, status: str) -> Message:
        passages = [p for m in self._seen for p in passages_of(m)]
        return message_object(
            message,
            thread_id=self._ids.thread,
            created_at=created,
            assistant_id=self._ids.assistant,
            run_id=self._ids.run,
            metadata={},
            attachments=[],
            passages=passages,
            status=status,
        )

    def _announce(self, message: Mapping[str, Any], seq: int) -> list[bytes]:
        key = str(message.get("id"))
        created = _now()
        self._open[key] = _Open(message, created)
        step = message_step(message, self._ids, "in_progress", created, None)
        announced = self._message(message, created, "in_progress")
        return [
            event("thread.run.step.created", step, seq),
            event("thread.run.step.in_progress", step, seq),
            event("thread.message.created", announced, seq),
            event("thread.message.in_progress", announced, seq),
        ]

    def _delta(self, key: str, text: str, seq: int) -> bytes:
        self._open[key].text += text
        delta = MessageDeltaEvent.model_validate(
            {
                "id": ids.message_wire(key),
                "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]},
            }
        )
        return event("thread.message.delta", delta, seq)

    def _close_tool_step(self, seq: int) -> list[bytes]:
        if self._tool_step is None:
            return []
        message, created = self._tool_step
        outputs = tool_outputs(self._seen)
        calls = [str(c.get("id")) for c in message.get("tool_calls") or []]
        if not all(c in outputs for c in calls):
            return []
        self._tool_step = None
        step = tool_step(message, outputs, self._ids, "completed", created, _now())
        return [event("thread.run.step.completed", step, seq)]

    # -- events -------------------------------------------------------------------------------

    def feed(self, envelope: Envelope) -> list[bytes]:
        item, seq = envelope.event, envelope.seq
        if isinstance(item, MessageUpsert):
            return self._upsert(item, seq)
        if isinstance(item, MessageDelta):
            out: list[bytes] = []
            if item.id in self._streaming and item.delta:
                out.extend(self._announce(self._streaming.pop(item.id), seq))
            if item.id in self._open and item.delta:
                out.append(self._delta(item.id, item.delta, seq))
            return out
        if isinstance(item, MessageRemove):
            return self._remove(item.id, seq)
        return []  # errors and the end are the caller's: it reads the run's outcome

    def _upsert(self, item: MessageUpsert, seq: int) -> list[bytes]:
        message = item.message
        key = str(message.get("id"))
        if message.get("type") != "ai":
            if not item.streaming and message.get("type") == "tool":
                self._seen.append(dict(message))
                return self._close_tool_step(seq)
            return []
        out = self._close_tool_step(seq)
        if item.streaming:
            self._streaming[key] = dict(message)
            first = text_of(message.get("content"))
            if first:
                out.extend(self._announce(self._streaming.pop(key), seq))
                out.append(self._delta(key, first, seq))
            return out
        self._streaming.pop(key, None)
        text = text_of(message.get("content"))
        if text and key not in self._open:
            out.extend(self._announce(message, seq))
            out.append(self._delta(key, text, seq))
        self._seen.append(dict(message))
        opened = self._open.pop(key, None)
        if opened is not None:
            done = _now()
            out.append(
                event("thread.message.completed", self._message(message, done, "completed"), seq)
            )
            step = message_step(message, self._ids, "completed", opened.created, done)
            out.append(event("thread.run.step.completed", step, seq))
        if message.get("tool_calls"):
            created = _now()
            self._tool_step = (dict(message), created)
            step = tool_step(message, {}, self._ids, "in_progress", created, None)
            out.append(event("thread.run.step.created", step, seq))
            out.append(event("thread.run.step.in_progress", step, seq))
        return out

    def _remove(self, key: str, seq: int) -> list[bytes]:
        self._streaming.pop(key, None)
        opened = self._open.pop(key, None)
        if opened is None:
            return []
        message = self._message(opened.message, opened.created, "in_progress")
        message = message.model_copy(
            update={
                "status": "incomplete",
                "incomplete_at": _now(),
                "incomplete_details": {"reason": "run_failed"},
            }
        )
        step = message_step(opened.message, self._ids, "failed", opened.created, _now())
        return [
            event("thread.message.incomplete", message, seq),
            event("thread.run.step.failed", step, seq),
        ]

    def finish(self, seq: int, status: str) -> list[bytes]:
        """Close what the run left open, as its final ``status`` says."""
        out: list[bytes] = []
        for key in list(self._open):
            out.extend(self._remove(key, seq))
        out.extend(self._close_tool_step(seq))
        if self._tool_step is not None and status in ("cancelled", "failed"):
            message, created = self._tool_step
            self._tool_step = None
            step = tool_step(message, tool_outputs(self._seen), self._ids, status, created, _now())
            out.append(event(f"thread.run.step.{status}", step, seq))
        return out
