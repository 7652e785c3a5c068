"""What every agent type's graph is built from: the parts, model calls and tool calls.

The graph of each agent type lives in its own module under :mod:`loom.agents.types`. Every
graph keeps the same state (``{"messages": [...]}``, see :mod:`loom.agents.state`) and is
compiled with the Postgres checkpointer. Model calls go through :func:`call_model`, which
retries transient provider failures that happen before the first token and turns provider
errors into Loom errors with safe messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableBinding, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from loom.errors import UpstreamError
from loom.providers import provider_error
from loom.tools.base import Retriever

log = logging.getLogger("loom.agents")

CompiledGraph = CompiledStateGraph[Any, Any, Any, Any]


@dataclass(frozen=True)
class GraphParts:
    """Everything a graph builder needs, resolved from an assistant's config."""

    state_schema: type[Any]
    checkpointer: BaseCheckpointSaver[Any]
    model: BaseChatModel
    system_message: str
    tools: Sequence[BaseTool]
    interrupt_before_action: bool
    retriever: Retriever | None
    max_retries: int


_TRANSIENT = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIConnectionError,
)


class TokenSink(Protocol):
    """Where a run's model calls send their text as it arrives (the run's event stream)."""

    async def text(self, message_id: str, delta: str) -> None:
        """``delta`` more text of the message ``message_id`` (``""`` on its first sight)."""
        ...


SINK_KEY = "__loom_sink"  # in a run's configurable; ``__`` keys stay out of checkpoints


async def call_model(
    model: BaseChatModel | Any,
    messages: Sequence[BaseMessage],
    config: RunnableConfig,
    max_retries: int,
    *,
    stream: bool = True,
) -> AIMessage:
    """Stream one model reply, its text to the run's token sink (``stream=False``: none).

    Transient failures (429, 5xx, connection errors) before the first token are retried with
    exponential backoff; a failure after it ends the run: the partial reply is never stored.
    """
    sink: TokenSink | None = (config.get("configurable") or {}).get(SINK_KEY) if stream else None
    bound, kwargs = (
        (model.bound, dict(model.kwargs))
        if isinstance(model, RunnableBinding)
        else (
            model,
            {},
        )
    )
    attempt = 0
    while True:
        message_id = str(uuid.uuid4())
        got_token = False

        async def on_text(delta: str, message_id: str = message_id) -> None:
            nonlocal got_token
            got_token = True
            if sink is not None:
                await sink.text(message_id, delta)

        try:
            reply: AIMessage | None = None
            fast = getattr(bound, "stream_reply", None)
            if fast is not None:
                reply = await fast(list(messages), on_text, **kwargs)
            if reply is None:
                reply = await _astream_reply(model, messages, config, on_text)
            reply.id = message_id
            return reply
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            transient = isinstance(exc, _TRANSIENT) and not isinstance(exc, openai.APITimeoutError)
            # A timeout is not retried: the provider already had the whole timeout to answer.
            if not got_token and transient and attempt < max_retries:
                delay = min(0.25 * (2**attempt), 4.0)
                log.info("model call failed (%s); retry %d in %.2fs", exc, attempt + 1, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            log.warning("model call failed: %r", exc)
            raise provider_error(exc) from exc


async def _astream_reply(
    model: BaseChatModel | Any,
    messages: Sequence[BaseMessage],
    config: RunnableConfig,
    on_text: Callable[[str], Awaitable[None]],
) -> AIMessage:
    """Any chat model, through LangChain's ``astream``."""
    merged: AIMessageChunk | None = None
    async for chunk in model.astream(messages, config):
        text = chunk.content if isinstance(chunk.content, str) else ""
        if merged is None or text:
            await on_text(text)
        merged = chunk if merged is None else merged + chunk
    if merged is None:
        raise UpstreamError("The model provider sent an empty reply")
    return AIMessage(
        content=merged.content,
        additional_kwargs=merged.additional_kwargs,
        response_metadata=merged.response_metadata,
        tool_calls=merged.tool_calls,
        invalid_tool_calls=merged.invalid_tool_calls,
        usage_metadata=merged.usage_metadata,
    )


def system_prompt(parts: GraphParts) -> list[BaseMessage]:
    """The assistant's instructions as the prompt's first message (none if they are empty)."""
    return [SystemMessage(content=parts.system_message)] if parts.system_message else []


async def run_tool(
    tool: BaseTool | None, call: dict[str, Any], config: RunnableConfig
) -> ToolMessage:
    """Run one tool call; a failure becomes a ``status="error"`` tool message, not a failed run."""
    call_id, name = call["id"], call["name"]

    def failed(text: str) -> ToolMessage:
        return ToolMessage(
            content=text, tool_call_id=call_id, name=name, status="error", id=str(uuid.uuid4())
        )

    if tool is None:
        return failed(f"Error: there is no tool named {name!r}.")
    try:
        # Invoked as a tool call so the tool's own error handling sets the message's status.
        result = await tool.ainvoke(
            {"type": "tool_call", "id": call_id, "name": name, "args": call.get("args") or {}},
            config,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a tool error is something the model should see, not a failed run
        log.info("tool %s failed: %r", tool.name, exc)
        return failed(f"Error: the tool {tool.name} failed ({type(exc).__name__}).")
    if isinstance(result, ToolMessage):
        result.id = result.id or str(uuid.uuid4())
        result.name = result.name or name
        return result
    content = result if isinstance(result, str) else json.dumps(result, default=str)
    return ToolMessage(content=content, tool_call_id=call_id, name=name, id=str(uuid.uuid4()))


GraphBuilder = Callable[[GraphParts], CompiledGraph]
