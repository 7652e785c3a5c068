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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypedDict, cast

from langchain_core.messages import AnyMessage, BaseMessage, RemoveMessage, convert_to_messages
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer


class MessagesReducer:
    """LangGraph's delta reducer for messages, remembering the id index of what it returns.

    ``_messages_delta_reducer`` indexes the whole list by message id on every call: on a
    thread of a thousand turns, a few thousand attribute reads per update, three updates a
    turn. This gives the same results (it is that reducer whenever there is anything unusual
    to do) and, for the common update (new messages or replacements by id, onto a list it
    returned), extends the index of the list it started from instead. Indexes are kept for the
    ``size`` lists returned last; a list not among them is simply indexed again.
    """

    def __init__(self, size: int = 256) -> None:
        self._indexes: dict[int, tuple[list[Any], dict[str, int]]] = {}
        self._size = size

    def _index_of(self, state: Any) -> dict[str, int] | None:
        if isinstance(state, list) and not state:
            return {}
        found = self._indexes.get(id(state))
        return found[1] if found is not None and found[0] is state else None

    def _keep(self, result: list[Any], index: dict[str, int]) -> None:
        indexes = self._indexes
        indexes[id(result)] = (result, index)
        while len(indexes) > self._size:
            del indexes[next(iter(indexes))]

    def reduce(self, state: Any, writes: Sequence[Any]) -> list[Any]:
        flat: list[Any] = []
        for write in writes:
            if isinstance(write, list):
                flat.extend(write)
            else:
                flat.append(write)
        base = self._index_of(state)
        if base is None or not all(
            isinstance(m, BaseMessage) and not isinstance(m, RemoveMessage) and m.id is not None
            for m in flat
        ):
            result = cast(list[Any], _messages_delta_reducer(state, list(writes)))
            self._keep(result, {m.id: i for i, m in enumerate(result) if m.id is not None})
            return result
        index = dict(base)
        result = list(state)
        for message in flat:
            at = index.get(message.id)
            if at is None:
                index[message.id] = len(result)
                result.append(message)
            else:
                result[at] = message
        self._keep(result, index)
        return result


def state_channels(snapshot_frequency: int) -> dict[str, DeltaChannel[Any]]:
    """The state's channels: ``messages`` as deltas, a snapshot every ``snapshot_frequency``
    updates. One set per process: the graphs and the saver (which folds their histories,
    see :class:`~loom.storage.checkpoints.LoomSaver`) share its reducer's memory."""
    reducer = cast(Callable[[Any, Sequence[Any]], Any], MessagesReducer().reduce)
    return {"messages": DeltaChannel(reducer, snapshot_frequency=snapshot_frequency)}


def make_state_schema(channels: Mapping[str, DeltaChannel[Any]]) -> type[Any]:
    """The state TypedDict: ``{"messages": [...]}`` stored as deltas."""
    return TypedDict(  # type: ignore[operator, no-any-return]
        "LoomState", {"messages": Annotated[list[AnyMessage], channels["messages"]]}
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
