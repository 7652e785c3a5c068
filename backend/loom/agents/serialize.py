"""Messages on the wire: LangChain's serialisation, as OpenGPTs clients read it."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage


def message_to_dict(message: BaseMessage) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    if isinstance(message, AIMessageChunk):
        data["type"] = "ai"
        data.pop("tool_call_chunks", None)
        data.pop("chunk_position", None)
    return data


def message_start(message_id: str, text: str) -> dict[str, Any]:
    """The first sight of a streamed AI message: a plain ``ai`` message with its first text."""
    return {
        "content": text,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": "ai",
        "name": None,
        "id": message_id,
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": None,
    }
