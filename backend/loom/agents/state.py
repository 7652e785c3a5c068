"""Loom's graph state: one message list on LangGraph's ``DeltaChannel``.

With the default ``add_messages`` channel every checkpoint re-stores the whole message list
(bytes grow with the square of a thread's length). ``DeltaChannel`` stores each message once
in ``checkpoint_writes`` and a full snapshot every ``snapshot_frequency`` updates; the stock
``AsyncPostgresSaver`` rebuilds state by replaying the parent chain.

Rules that come with it (see DESIGN.md): every message carries an id (the delta reducer does
not assign them, so :func:`with_ids` does), never ``RemoveMessage(REMOVE_ALL_MESSAGES)``, and
never touch checkpoint rows outside the saver's own methods.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypedDict, cast

from langchain_core.messages import AnyMessage, BaseMessage, convert_to_messages
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer


def make_state_schema(snapshot_frequency: int) -> type[Any]:
    """The state TypedDict: ``{"messages": [...]}`` stored as deltas."""
    reducer = cast(Callable[[Any, Sequence[Any]], Any], _messages_delta_reducer)
    channel: DeltaChannel[Any] = DeltaChannel(reducer, snapshot_frequency=snapshot_frequency)
    return TypedDict(  # type: ignore[operator, no-any-return]
        "LoomState", {"messages": Annotated[list[AnyMessage], channel]}
    )


def with_ids(messages: Iterable[Any]) -> list[BaseMessage]:
    """Coerce message-likes to messages, giving each one without an id a fresh one.

    Raises ``ValueError`` naming the first message that is not one (no library internals).
    """
    out: list[BaseMessage] = []
    for index, raw in enumerate(messages):
        try:
            [message] = convert_to_messages([raw])
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ValueError(
                f"message {index} is not a valid message: it needs a type (human, ai, system "
                "or tool) and a content that is a string or a list of content parts"
            ) from exc
        if not message.id:
            message.id = str(uuid.uuid4())
        out.append(message)
    return out


def messages_of(values: Any) -> Sequence[BaseMessage]:
    if isinstance(values, dict):
        return values.get("messages") or []
    return []
