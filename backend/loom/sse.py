"""The one module that writes Server-Sent Events bytes.

Every protocol's stream writer (the native API's in :mod:`loom.api.stream`, and those of
other protocols) turns its own event shapes into frames here. Framing is FastAPI's
(:func:`fastapi.sse.format_sse_event`) and the response class is FastAPI's
:class:`~fastapi.sse.EventSourceResponse` (so the OpenAPI document says
``text/event-stream``); writes are batched here: every frame ready at once goes out in one
send, which keeps a busy server's per-token cost low.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from fastapi.sse import EventSourceResponse, format_sse_event

HEARTBEAT = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

__all__ = ["HEARTBEAT", "SSE_HEADERS", "EventSourceResponse", "dumps", "frame", "response"]


def dumps(value: Any) -> str:
    """Compact JSON with non-ASCII kept as UTF-8 (what every Loom stream sends)."""
    return orjson.dumps(value, default=str).decode()


def frame(
    event: str | None, data: Any = None, *, id: int | str | None = None, raw: str | None = None
) -> bytes:
    """One SSE event; ``data`` is JSON-encoded, ``None`` sends no data line. ``raw`` is sent
    as the data line as it is (a sentinel such as OpenAI's ``[DONE]``)."""
    return format_sse_event(
        data_str=raw if raw is not None else None if data is None else dumps(data),
        event=event,
        id=None if id is None else str(id),
    )


def response(
    chunks: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> EventSourceResponse:
    return EventSourceResponse(chunks, headers={**SSE_HEADERS, **(headers or {})})


def join(frames: Iterable[bytes]) -> bytes:
    return b"".join(frames)
