"""``agent``: calls tools in a loop until it can answer; may ask before using a tool.

The graph is ``agent`` (the model) -> ``action`` (the tools it asked for) -> ``agent`` ...,
ending when the model answers without a tool call. With ``interrupt_before_action`` the run
stops before ``action`` so a client can approve, edit or reject the pending calls.

Calls of client-side functions (:mod:`loom.agents.client_tools`) are not run by ``action``:
once it has run the server-side calls of a reply, the run stops before ``client_tools``
(status ``interrupted``, state ``next == ["client_tools"]``). The client posts a tool message
for each call (recorded as ``action``'s output, so the thread goes back to the model) and
continues with a run whose input is ``null``. A run that continues without them reaches
``client_tools``, which answers the calls with an error so the model can go on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from loom.agents.client_tools import is_client_side
from loom.agents.graphs import CompiledGraph, GraphParts, call_model, run_tool, system_prompt
from loom.agents.types.base import AgentType

CANCELLED_CALL = "Error: this tool call was cancelled before it returned."
NO_CLIENT_OUTPUT = "Error: the client sent no output for this call."


def _call_ids(message: AIMessage) -> Iterator[tuple[str, str]]:
    """(id, tool name) of every call in the message, valid or not (the provider sees both)."""
    for call in message.tool_calls:
        if call.get("id"):
            yield str(call["id"]), call["name"]
    for broken in message.invalid_tool_calls:
        if broken.get("id"):
            yield str(broken["id"]), broken.get("name") or "unknown"


def close_dangling_calls(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages for the model's prompt, with every tool call answered.

    A run stopped while its tools were running (or a pending call the user never approved)
    leaves an AI message whose calls have no tool message; once a new message follows it, the
    provider would reject the whole request. Each such call gets a synthetic error result right
    after its AI message, in the prompt only: the thread's state is not changed. Calls on the
    last message are left alone: they are the pending calls the action node is about to run.
    """
    answered: set[str] = set()  # ids of the calls answered later in the list
    prompt: list[BaseMessage] = []  # built back to front
    last = len(messages) - 1
    for index in range(last, -1, -1):
        message = messages[index]
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
        elif isinstance(message, AIMessage) and index != last:
            missing: list[BaseMessage] = []
            for call_id, name in _call_ids(message):
                if call_id in answered:
                    continue
                answered.add(call_id)
                missing.append(
                    ToolMessage(
                        content=CANCELLED_CALL,
                        tool_call_id=call_id,
                        name=name,
                        status="error",
                        id=f"cancelled-{call_id}",
                    )
                )
            prompt.extend(reversed(missing))
        prompt.append(message)
    prompt.reverse()
    return prompt


def unanswered_calls(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """(id, name) of the calls of the last AI message that no tool message answers yet."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage):
            answered = {m.tool_call_id for m in messages[index + 1 :] if isinstance(m, ToolMessage)}
            return [(i, n) for i, n in _call_ids(message) if i not in answered]
    return []


def build(parts: GraphParts) -> CompiledGraph:
    tools_by_name = {t.name: t for t in parts.tools}
    client_side = {t.name for t in parts.tools if is_client_side(t)}
    model = parts.model.bind_tools(list(parts.tools)) if parts.tools else parts.model

    async def agent(state: Any, config: RunnableConfig) -> dict[str, Any]:
        prompt = system_prompt(parts) + close_dangling_calls(state["messages"])
        reply = await call_model(model, prompt, config, parts.max_retries)
        return {"messages": [reply]}

    async def action(state: Any, config: RunnableConfig) -> dict[str, Any]:
        messages = state["messages"]
        ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if ai is None:
            return {"messages": []}
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        pending = [
            c for c in ai.tool_calls if c.get("id") not in answered and c["name"] not in client_side
        ]
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
            *(run_tool(tools_by_name.get(c["name"]), dict(c), config) for c in pending)
        )
        return {"messages": [*results, *broken]}

    async def client_tools(state: Any, config: RunnableConfig) -> dict[str, Any]:
        # Only reached when a run continues without the client's outputs.
        missing = [
            ToolMessage(
                content=NO_CLIENT_OUTPUT,
                tool_call_id=call_id,
                name=name,
                status="error",
                id=str(uuid.uuid4()),
            )
            for call_id, name in unanswered_calls(state["messages"])
        ]
        return {"messages": missing}

    def route(state: Any) -> str:
        last = state["messages"][-1] if state["messages"] else None
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return "action"
        return END

    def after_action(state: Any) -> str:
        # What is still unanswered after the server-side calls ran is the client's.
        return "client_tools" if unanswered_calls(state["messages"]) else "agent"

    graph = StateGraph(parts.state_schema)
    graph.add_node("agent", agent)
    graph.add_node("action", action)
    graph.add_node("client_tools", client_tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["action", END])
    graph.add_conditional_edges("action", after_action, ["client_tools", "agent"])
    graph.add_edge("client_tools", "agent")
    interrupt_before = ["action", "client_tools"] if parts.interrupt_before_action else None
    return graph.compile(
        checkpointer=parts.checkpointer,
        interrupt_before=interrupt_before or ["client_tools"],
    )


def update_node(messages: Sequence[BaseMessage]) -> str:
    # Tool results posted by a client (e.g. rejecting a pending call) count as the action
    # node's output, so a run with input null goes back to the model.
    if messages and isinstance(messages[-1], ToolMessage):
        return "action"
    return "agent"


AGENT_TYPE = AgentType(
    id="agent",
    name="Agent (tools)",
    description="Calls tools in a loop until it can answer; may ask before using a tool.",
    build=build,
    values_as_list=True,
    update_node=update_node,
    model_fields=("agent_type", "llm_type", "model"),
    config_fields=frozenset(
        {"tools", "interrupt_before_action", "retrieval_description", "recursion_limit"}
    ),
)
