"""Helpers shared by the tool tests."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from loom.settings import Settings
from loom.tools.base import ToolContext
from loom.tools.registry import ToolRegistry


def build(registry: ToolRegistry, settings: Settings, entry: object, **ctx: Any) -> BaseTool:
    """Build one tool from a client-style entry, as an agent would."""
    [tool] = registry.build(ToolContext(settings=settings, **ctx), [entry])
    return tool


async def call(tool: BaseTool, **args: Any) -> ToolMessage:
    """Invoke a tool the way an agent does (a tool call), returning the ToolMessage."""
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "call_1", "name": tool.name, "args": args}
    )
    assert isinstance(message, ToolMessage)
    return message
