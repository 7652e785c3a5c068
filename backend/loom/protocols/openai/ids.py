"""Wire ids of the Assistants API and the Loom ids they stand for.

Every object keeps its Loom id; on the wire it gets OpenAI's prefix: ``asst_``, ``thread_``,
``run_``, ``file-``, ``vs_``, ``vsfb_`` followed by the UUID's 32 hex digits. Clients may also
send the plain UUID (as the native API writes it). A message's wire id is ``msg_`` + its
LangChain id (``msg_~`` + base64url when that id has characters unfit for a URL path); a run
step's is
``step_m_`` (the message it created) or ``step_t_`` (the tool calls of an AI message) + the
same tail. Every mapping is reversible; an id that parses as nothing is "not found".
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Literal

from loom.errors import NotFound

Kind = Literal["assistant", "thread", "run", "file", "vector_store", "file_batch"]
PREFIX: dict[Kind, str] = {
    "assistant": "asst_",
    "thread": "thread_",
    "run": "run_",
    "file": "file-",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
}
_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
StepKind = Literal["message_creation", "tool_calls"]
_STEP_PREFIX: dict[StepKind, str] = {"message_creation": "step_m_", "tool_calls": "step_t_"}


def not_found(kind: str, raw: str) -> NotFound:
    return NotFound(f"No {kind.replace('_', ' ')} found with id '{raw[:100]}'.")


def wire(kind: Kind, value: uuid.UUID) -> str:
    return PREFIX[kind] + value.hex


def parse(kind: Kind, raw: str) -> uuid.UUID:
    """The Loom id behind a wire id (prefixed hex or a plain UUID); 404 when it is neither."""
    prefix = PREFIX[kind]
    text = raw[len(prefix) :] if raw.startswith(prefix) else raw
    if len(text) in (32, 36):
        try:
            value = uuid.UUID(text)
        except ValueError:
            pass
        else:
            if text in (value.hex, str(value)):
                return value
    raise not_found(kind, raw)


def wire_optional(kind: Kind, value: uuid.UUID | None) -> str | None:
    return wire(kind, value) if value is not None else None


def _tail(message_id: str) -> str:
    if _SAFE.match(message_id) and not message_id.startswith("~"):
        return message_id
    return "~" + base64.urlsafe_b64encode(message_id.encode()).decode().rstrip("=")


def _from_tail(tail: str) -> str | None:
    if not tail.startswith("~"):
        return tail if _SAFE.match(tail) else None
    data = tail[1:]
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def message_wire(message_id: str) -> str:
    return "msg_" + _tail(message_id)


def message_parse(raw: str) -> str:
    value = _from_tail(raw[4:]) if raw.startswith("msg_") else None
    if not value:
        raise not_found("message", raw)
    return value


def step_wire(kind: StepKind, message_id: str) -> str:
    return _STEP_PREFIX[kind] + _tail(message_id)


def step_parse(raw: str) -> tuple[StepKind, str]:
    for kind, prefix in _STEP_PREFIX.items():
        if raw.startswith(prefix):
            value = _from_tail(raw[len(prefix) :])
            if value:
                return kind, value
    raise not_found("run step", raw)
