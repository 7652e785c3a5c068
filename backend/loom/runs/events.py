"""Typed run events: what the executor publishes and the SSE writer encodes.

A run's event stream is ``metadata`` first, then message patches, then exactly one of
``end`` or ``error`` followed by ``end``. Message patches are compact: a full message (insert
or replace by id) or a text delta appended to a message's content; the OpenGPTs wire format
(the whole list of messages so far, re-sent on every token) is rebuilt from them by the SSE
writer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class MetadataEvent(BaseModel):
    kind: Literal["metadata"] = "metadata"
    run_id: str
    thread_id: str


class MessageUpsert(BaseModel):
    """A whole message: insert it, or replace the message with the same id."""

    kind: Literal["upsert"] = "upsert"
    message: dict[str, Any]


class MessageDelta(BaseModel):
    """Text appended to the content of the message with this id."""

    kind: Literal["delta"] = "delta"
    id: str
    delta: str


class ErrorEvent(BaseModel):
    kind: Literal["error"] = "error"
    status_code: int
    message: str


class EndEvent(BaseModel):
    kind: Literal["end"] = "end"
    status: str = "success"


RunEvent = MetadataEvent | MessageUpsert | MessageDelta | ErrorEvent | EndEvent
Patch = MessageUpsert | MessageDelta
