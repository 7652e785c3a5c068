"""The messages the native API takes (``POST /runs`` input, ``POST /threads/{id}/state``).

A message is a string (a human message) or an object with a ``type`` (OpenGPTs' shape) or a
``role``: ``human``/``user``, ``ai``/``assistant``, ``system``/``developer``, or ``tool``
(which needs the ``tool_call_id`` it answers), and a ``content`` that is a string or a list
of content parts. Other keys (``additional_kwargs``, ``response_metadata``, ``artifact``,
...) are kept, so a message read from a thread's state can be sent back as it is. The typed
models make the OpenAPI document say exactly what is accepted; :func:`wire_messages` turns
them back into the plain dicts :func:`loom.agents.state.with_ids` converts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

ChatKind = Literal["human", "user", "ai", "assistant", "system", "developer"]
Content = str | list[str | dict[str, Any]] | None


class ToolCallIn(BaseModel):
    """A tool call of an ``ai`` message (LangChain's shape)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    args: dict[str, Any]
    id: str | None = Field(description="The call's id (null: none); a tool message answers it")
    type: Literal["tool_call"] | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    content: Content = Field(description="A string or a list of content parts")
    id: str | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    additional_kwargs: dict[str, Any] | None = None
    response_metadata: dict[str, Any] | None = None
    example: StrictBool | None = None
    status: Literal["success", "error"] | None = None

    def kind(self) -> str:
        raise NotImplementedError

    def wire(self) -> dict[str, Any]:
        """The plain message dict (``type`` set, ``role`` dropped; unset keys left out)."""
        out = self.model_dump(mode="json", exclude_unset=True, exclude={"type", "role"})
        out.pop("type", None)
        out.pop("role", None)
        for key in ("additional_kwargs", "response_metadata", "example", "status"):
            if out.get(key) is None:
                out.pop(key, None)
        return {"type": self.kind(), **out}


class TypedMessage(_Message):
    type: ChatKind
    tool_call_id: str | None = None

    def kind(self) -> str:
        return self.type


class TypedToolMessage(_Message):
    type: Literal["tool"]
    tool_call_id: str = Field(description="The id of the tool call this message answers")

    def kind(self) -> str:
        return self.type


class RoleMessage(_Message):
    role: ChatKind
    tool_call_id: str | None = None

    def kind(self) -> str:
        return self.role


class RoleToolMessage(_Message):
    role: Literal["tool"]
    tool_call_id: str = Field(description="The id of the tool call this message answers")

    def kind(self) -> str:
        return self.role


MessageIn = Annotated[
    str | TypedMessage | TypedToolMessage | RoleMessage | RoleToolMessage,
    Field(description="A message: a string (human) or {type (or role), content, ...}"),
]


class MessagesIn(BaseModel):
    """``{"messages": [...]}``."""

    model_config = ConfigDict(extra="ignore")

    messages: list[MessageIn]


class MaybeMessagesIn(BaseModel):
    """``{"messages": [...]}``; ``null`` messages continue a paused run."""

    model_config = ConfigDict(extra="ignore")

    messages: list[MessageIn] | None


def wire_messages(messages: list[MessageIn]) -> list[Any]:
    return [m if isinstance(m, str) else m.wire() for m in messages]


def wire_input(
    value: list[MessageIn] | MessagesIn | MaybeMessagesIn | None,
) -> list[Any] | dict[str, Any] | None:
    """A run input or state values as the plain JSON the core takes."""
    if value is None:
        return None
    if isinstance(value, list):
        return wire_messages(value)
    return {"messages": None if value.messages is None else wire_messages(value.messages)}
