"""The native API's run streams: run events to OpenGPTs' SSE shapes.

Two wire formats share the same typed events:

* ``opengpts`` (default): each ``data`` event carries the JSON list of every message produced
  so far in the run, the last one growing token by token — what OpenGPTs clients read.
  Bytes grow with the square of the reply length.
* ``compact`` (``?format=compact``): each ``data`` event carries a JSON list of patches: a
  whole message (``{"type": ..., "id": ..., ...}``: insert, or replace the one with that id),
  ``{"id": ..., "delta": "text"}`` (append to that message's content) or
  ``{"id": ..., "removed": true}`` (drop a message a failed attempt left half-written).
  Bytes grow linearly.

Every stream starts with ``event: metadata`` (``{"run_id", "thread_id"}``, ``id: 0``) and
closes with ``event: end`` (no data line, so line-by-line clients that parse every ``data:``
are safe); a failure is one ``event: error`` (``{"status_code", "message"}``) just before it.
Every event carries the run's sequence number in ``id:``: reconnecting to
``GET /runs/{id}/stream`` with ``Last-Event-ID`` continues after it, none lost or repeated
(the opengpts format resends the whole message list in its first event, as it always does).
Comment lines (``: ping``) are heartbeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal

from loom.api.errors import http_status
from loom.runs.events import (
    EndEvent,
    Envelope,
    ErrorEvent,
    MessageDelta,
    MessageRemove,
    MessageUpsert,
)
from loom.sse import HEARTBEAT, frame

StreamFormat = Literal["opengpts", "compact"]
Patch = MessageUpsert | MessageDelta | MessageRemove


class OpenGptsWriter:
    """Rebuilds the full message list for every patch."""

    def __init__(self) -> None:
        self._messages: dict[str, dict[str, Any]] = {}

    def apply(self, event: Patch) -> bool:
        """Update the list; ``False`` when the event changes nothing visible."""
        if isinstance(event, MessageUpsert):
            key = str(event.message.get("id"))
            self._messages[key] = dict(event.message)
            return True
        if isinstance(event, MessageRemove):
            return self._messages.pop(event.id, None) is not None
        current = self._messages.get(event.id)
        if current is None:
            return False
        content = current.get("content")
        current["content"] = (content if isinstance(content, str) else "") + event.delta
        return True

    def patch(self, event: Patch, seq: int) -> bytes:
        if not self.apply(event):
            return b""
        return frame("data", list(self._messages.values()), id=seq)


class CompactWriter:
    def apply(self, event: Patch) -> bool:
        return True

    def patch(self, event: Patch, seq: int) -> bytes:
        if isinstance(event, MessageUpsert):
            return frame("data", [event.message], id=seq)
        if isinstance(event, MessageRemove):
            return frame("data", [{"id": event.id, "removed": True}], id=seq)
        return frame("data", [{"id": event.id, "delta": event.delta}], id=seq)


Writer = OpenGptsWriter | CompactWriter


def make_writer(fmt: StreamFormat) -> Writer:
    return CompactWriter() if fmt == "compact" else OpenGptsWriter()


def encode(envelope: Envelope, writer: Writer) -> bytes:
    event = envelope.event
    if isinstance(event, MessageUpsert | MessageDelta | MessageRemove):
        return writer.patch(event, envelope.seq)
    if isinstance(event, ErrorEvent):
        body = {"status_code": http_status(event.code), "message": event.message}
        return frame("error", body, id=envelope.seq)
    if isinstance(event, EndEvent):
        return frame("end", id=envelope.seq)
    raise TypeError(f"not a run event: {event!r}")


def metadata_frame(run_id: str, thread_id: str) -> bytes:
    return frame("metadata", {"run_id": run_id, "thread_id": thread_id}, id=0)


async def sse_stream(
    batches: AsyncIterator[list[Envelope]],
    fmt: StreamFormat,
    *,
    first: bytes = b"",
    replay: Iterable[Envelope] = (),
    on_end: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """Encode batches of a run's events; an empty batch is a heartbeat. Stops after ``end``.

    ``first`` is sent before anything (the metadata event of a new stream); ``replay`` are
    events the client already has, applied to the writer's state without being sent (a
    resumed opengpts stream needs the messages so far).
    """
    writer = make_writer(fmt)
    for envelope in replay:
        event = envelope.event
        if isinstance(event, MessageUpsert | MessageDelta | MessageRemove):
            writer.apply(event)
    if first:
        yield first
    async for batch in batches:
        if not batch:
            yield HEARTBEAT
            continue
        chunk = b"".join(encode(envelope, writer) for envelope in batch)
        if chunk:
            yield chunk
        if isinstance(batch[-1].event, EndEvent):
            if on_end is not None:
                on_end()
            return
