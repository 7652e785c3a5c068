"""Client-side functions as LangChain tools: declared to the model, never run by Loom.

An agent binds them like any tool so the model can call them; the ``agent`` graph routes their
calls to ``client_tools`` and stops before it, and the client answers with tool messages
(``update_state``) before continuing the thread with a run whose input is ``null``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from loom.agents.config import ClientFunction

_CLIENT_SIDE = "loom_client_side"


def client_function_tool(function: ClientFunction) -> BaseTool:
    async def never_here(**_: Any) -> str:
        raise ToolException(f"{function.name} is executed by the client, not by Loom")

    return StructuredTool.from_function(
        coroutine=never_here,
        name=function.name,
        description=function.description or function.name,
        args_schema=function.parameters,
        metadata={_CLIENT_SIDE: True},
    )


def is_client_side(tool: BaseTool) -> bool:
    return bool(tool.metadata and tool.metadata.get(_CLIENT_SIDE))
