"""The one module that writes Server-Sent Events.

Two wire formats share the same typed events:

* ``opengpts`` (default): each ``data`` event carries the JSON list of every message produced
  so far in the run, the last one growing token by token — what OpenGPTs clients read.
  Bytes grow with the square of the reply length.
* ``compact`` (``?format=compact``): each ``data`` event carries a JSON list of patches: a
  whole message (``{"type": ..., "id": ..., ...}``: insert, or replace the one with that id)
  or ``{"id": ..., "delta": "text"}`` (append to that message's content). Bytes grow linearly.

Every stream starts with ``event: metadata`` (``{"run_id", "thread_id"}``) and closes with
``event: end`` (no data line, so line-by-line clients that parse every ``data:`` are safe);
a failure is one ``event: error`` (``{"status_code", "message"}``) just before it. Comment
lines (``: ping``) are heartbeats.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from loom.runs.events import (
    EndEvent,
    ErrorEvent,
    MessageDelta,
    MessageUpsert,
    MetadataEvent,
    RunEvent,
)

StreamFormat = Literal["opengpts", "compact"]

HEARTBEAT = b": ping\n\n"
END = b"event: end\n\n"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


class _OpenGptsWriter:
    """Rebuilds the full message list for every patch."""

    def __init__(self) -> None:
        self._messages: dict[str, dict[str, Any]] = {}

    def patch(self, event: MessageUpsert | MessageDelta) -> bytes:
        if isinstance(event, MessageUpsert):
            key = str(event.message.get("id"))
            self._messages[key] = dict(event.message)
        else:
            current = self._messages.get(event.id)
            if current is None:
                return b""
            content = current.get("content")
            current["content"] = (content if isinstance(content, str) else "") + event.delta
        return frame("data", list(self._messages.values()))


class _CompactWriter:
    def patch(self, event: MessageUpsert | MessageDelta) -> bytes:
        if isinstance(event, MessageUpsert):
            return frame("data", [event.message])
        return frame("data", [{"id": event.id, "delta": event.delta}])


def encode(event: RunEvent, writer: _OpenGptsWriter | _CompactWriter) -> bytes:
    if isinstance(event, MessageUpsert | MessageDelta):
        return writer.patch(event)
    if isinstance(event, MetadataEvent):
        return frame("metadata", {"run_id": event.run_id, "thread_id": event.thread_id})
    if isinstance(event, ErrorEvent):
        return frame("error", {"status_code": event.status_code, "message": event.message})
    if isinstance(event, EndEvent):
        return END
    raise TypeError(f"not a run event: {event!r}")


async def sse_stream(
    batches: AsyncIterator[list[RunEvent]], fmt: StreamFormat
) -> AsyncIterator[bytes]:
    """Encode batches of a run's events; an empty batch is a heartbeat. Stops after ``end``."""
    writer: _OpenGptsWriter | _CompactWriter = (
        _CompactWriter() if fmt == "compact" else _OpenGptsWriter()
    )
    async for batch in batches:
        if not batch:
            yield HEARTBEAT
            continue
        chunk = b"".join(encode(event, writer) for event in batch)
        if chunk:
            yield chunk
        if isinstance(batch[-1], EndEvent):
            return


def error_stream(status_code: int, message: str) -> list[bytes]:
    """A complete stream for a run that failed before it started."""
    return [frame("error", {"status_code": status_code, "message": message}), END]
