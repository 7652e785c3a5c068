"""Typed run events: what a run's executor publishes, the broker carries and SSE writers encode.

A run's event log is message patches followed by exactly one ``end`` (an ``error`` just
before it when the run failed). Every event carries a per-run sequence number (``seq``,
from 1) that every SSE writer puts in ``id:``, so a stream resumes with ``Last-Event-ID``.
Message patches are compact: a whole message (insert, or replace by id), a text delta
appended to a message's content, or the removal of a message a failed attempt left
half-written. Protocol shapes (OpenGPTs' whole list per token, compact patches, ...) are
built from these by each protocol's writer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter

# Events are slotted dataclasses rather than pydantic models: a run makes one per token, and
# a dataclass costs a fraction of a model to build. pydantic still validates them wherever
# they are read back from outside the process (``load_batch``).


@dataclass(slots=True)
class MessageUpsert:
    """A whole message: insert it, or replace the message with the same id.

    ``streaming`` marks the first sight of a message the model is still writing (deltas
    follow); a message without it is complete.
    """

    message: dict[str, Any]
    streaming: bool = False
    kind: Literal["upsert"] = "upsert"


@dataclass(slots=True)
class MessageDelta:
    """Text appended to the content of the message with this id."""

    id: str
    delta: str
    kind: Literal["delta"] = "delta"


@dataclass(slots=True)
class MessageRemove:
    """Drop a message a previous attempt of the run streamed but never completed."""

    id: str
    kind: Literal["remove"] = "remove"


@dataclass(slots=True)
class ErrorEvent:
    """The run failed or was stopped: a stable error code and a client-safe message."""

    code: str
    message: str
    kind: Literal["error"] = "error"


@dataclass(slots=True)
class EndEvent:
    status: str = "success"
    kind: Literal["end"] = "end"


RunEvent = MessageUpsert | MessageDelta | MessageRemove | ErrorEvent | EndEvent
_ADAPTER: TypeAdapter[RunEvent] = TypeAdapter(Annotated[RunEvent, Field(discriminator="kind")])


@dataclass(slots=True, frozen=True)
class Envelope:
    """An event with its per-run sequence number."""

    seq: int
    event: RunEvent = field(compare=True)


def dump_batch(batch: list[Envelope]) -> bytes:
    """Serialize envelopes (for a broker that stores or forwards them)."""
    return orjson.dumps([[e.seq, asdict(e.event)] for e in batch])


def load_batch(data: bytes | str) -> list[Envelope]:
    return [Envelope(seq, _ADAPTER.validate_python(event)) for seq, event in orjson.loads(data)]


def partial_messages(log: list[Envelope]) -> list[str]:
    """Ids of messages a log shows started (``streaming``) but never completed."""
    open_ids: dict[str, None] = {}
    for envelope in log:
        event = envelope.event
        if isinstance(event, MessageUpsert):
            key = str(event.message.get("id"))
            if event.streaming:
                open_ids[key] = None
            else:
                open_ids.pop(key, None)
        elif isinstance(event, MessageRemove):
            open_ids.pop(event.id, None)
    return list(open_ids)
