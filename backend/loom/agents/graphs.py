"""The graph of each agent type.

Every graph keeps the same state (``{"messages": [...]}``, see :mod:`loom.agents.state`) and
is compiled with the Postgres checkpointer. Model calls go through :func:`call_model`, which
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
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from loom.errors import UpstreamError
from loom.providers import provider_error
from loom.tools.base import RetrievedChunk, Retriever

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


async def call_model(
    model: BaseChatModel | Any,
    messages: Sequence[BaseMessage],
    config: RunnableConfig,
    max_retries: int,
) -> AIMessage:
    """Stream one model reply (tokens reach the client through LangGraph's messages mode).

    Transient failures (429, 5xx, connection errors) before the first token are retried with
    exponential backoff; a failure after it ends the run: the partial reply is never stored.
    """
    attempt = 0
    while True:
        got_token = False
        try:
            merged: AIMessageChunk | None = None
            async for chunk in model.astream(messages, config):
                got_token = True
                merged = chunk if merged is None else merged + chunk
            if merged is None:
                raise UpstreamError("The model provider sent an empty reply")
            reply = AIMessage(
                content=merged.content,
                additional_kwargs=merged.additional_kwargs,
                response_metadata=merged.response_metadata,
                tool_calls=merged.tool_calls,
                invalid_tool_calls=merged.invalid_tool_calls,
                usage_metadata=merged.usage_metadata,
                id=merged.id or str(uuid.uuid4()),
            )
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


def _system(parts: GraphParts) -> list[BaseMessage]:
    return [SystemMessage(content=parts.system_message)] if parts.system_message else []


# --- chatbot -------------------------------------------------------------------------------


def build_chatbot(parts: GraphParts) -> CompiledGraph:
    async def chatbot(state: Any, config: RunnableConfig) -> dict[str, Any]:
        reply = await call_model(
            parts.model, _system(parts) + list(state["messages"]), config, parts.max_retries
        )
        return {"messages": [reply]}

    graph = StateGraph(parts.state_schema)
    graph.add_node("chatbot", chatbot)
    graph.add_edge(START, "chatbot")
    graph.add_edge("chatbot", END)
    return graph.compile(checkpointer=parts.checkpointer)


# --- agent (tool-calling loop) -------------------------------------------------------------


async def _run_tool(
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


def build_agent(parts: GraphParts) -> CompiledGraph:
    tools_by_name = {t.name: t for t in parts.tools}
    model = parts.model.bind_tools(list(parts.tools)) if parts.tools else parts.model

    async def agent(state: Any, config: RunnableConfig) -> dict[str, Any]:
        reply = await call_model(
            model, _system(parts) + list(state["messages"]), config, parts.max_retries
        )
        return {"messages": [reply]}

    async def action(state: Any, config: RunnableConfig) -> dict[str, Any]:
        messages = state["messages"]
        ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if ai is None:
            return {"messages": []}
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        pending = [c for c in ai.tool_calls if c.get("id") not in answered]
        # Calls whose arguments were not valid JSON: the model is told, so it can try again
        # (the provider also requires every call id to be answered).
        broken = [
            ToolMessage(
                content=f"Error: the arguments of this {c.get('name')} call are not valid JSON.",
                tool_call_id=c["id"],
                name=c.get("name") or "unknown",
                status="error",
                id=str(uuid.uuid4()),
            )
            for c in ai.invalid_tool_calls
            if c.get("id") and c.get("id") not in answered
        ]
        results = await asyncio.gather(
            *(_run_tool(tools_by_name.get(c["name"]), dict(c), config) for c in pending)
        )
        return {"messages": [*results, *broken]}

    def route(state: Any) -> str:
        last = state["messages"][-1] if state["messages"] else None
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return "action"
        return END

    graph = StateGraph(parts.state_schema)
    graph.add_node("agent", agent)
    graph.add_node("action", action)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["action", END])
    graph.add_edge("action", "agent")
    return graph.compile(
        checkpointer=parts.checkpointer,
        interrupt_before=["action"] if parts.interrupt_before_action else None,
    )


# --- chat_retrieval (RAG) ------------------------------------------------------------------

REWRITE_PROMPT = (
    "Given the conversation below, rewrite the user's last message as a standalone search "
    "query that would find the documents needed to answer it. Answer with the query only.\n\n"
    "{conversation}"
)

ANSWER_PROMPT = (
    "{system_message}\n\nAnswer the user's question using the context below. If the context "
    "does not contain the answer, say that you do not know.\n\n<context>\n{context}\n</context>"
)


def _format_chunks(chunks: Sequence[RetrievedChunk]) -> str:
    return "\n\n".join(
        f"<document source={json.dumps(c.source or '')}>\n{c.content}\n</document>" for c in chunks
    )


def build_chat_retrieval(parts: GraphParts) -> CompiledGraph:
    retrieval_tag = ["nostream"]

    async def retrieve(state: Any, config: RunnableConfig) -> dict[str, Any]:
        messages = list(state["messages"])
        question = str(messages[-1].content) if messages else ""
        if sum(isinstance(m, HumanMessage) for m in messages) > 1:
            conversation = "\n".join(
                f"{m.type}: {m.content}" for m in messages if m.type in ("human", "ai")
            )
            quiet: RunnableConfig = {**config, "tags": [*config.get("tags", []), *retrieval_tag]}
            rewritten = await call_model(
                parts.model,
                [HumanMessage(content=REWRITE_PROMPT.format(conversation=conversation))],
                quiet,
                parts.max_retries,
            )
            question = str(rewritten.content).strip() or question
        chunks = await parts.retriever(question) if parts.retriever else []
        # The retrieved context is recorded as a tool message so it shows in the thread.
        call_id = f"retrieval-{uuid.uuid4()}"
        request = AIMessage(
            content="",
            tool_calls=[{"id": call_id, "name": "retrieval", "args": {"query": question}}],
            id=str(uuid.uuid4()),
        )
        found = ToolMessage(
            content=_format_chunks(chunks) or "No documents found.",
            tool_call_id=call_id,
            name="retrieval",
            id=str(uuid.uuid4()),
        )
        return {"messages": [request, found]}

    async def response(state: Any, config: RunnableConfig) -> dict[str, Any]:
        messages = list(state["messages"])
        context = str(messages[-1].content) if messages else ""
        conversation = [
            m
            for m in messages
            if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls)
        ]
        prompt = [
            SystemMessage(
                content=ANSWER_PROMPT.format(system_message=parts.system_message, context=context)
            ),
            *conversation,
        ]
        reply = await call_model(parts.model, prompt, config, parts.max_retries)
        return {"messages": [reply]}

    graph = StateGraph(parts.state_schema)
    graph.add_node("invoke_retrieval", retrieve)
    graph.add_node("response", response)
    graph.add_edge(START, "invoke_retrieval")
    graph.add_edge("invoke_retrieval", "response")
    graph.add_edge("response", END)
    return graph.compile(checkpointer=parts.checkpointer)


GraphBuilder = Callable[[GraphParts], CompiledGraph]
RetrieverFactory = Callable[[], Awaitable[Retriever]]
