"""``chatbot``: answers from the conversation and its instructions alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from loom.agents.graphs import CompiledGraph, GraphParts, call_model, system_prompt
from loom.agents.types.base import AgentType

NODE = "chatbot"


def build(parts: GraphParts) -> CompiledGraph:
    async def chatbot(state: Any, config: RunnableConfig) -> dict[str, Any]:
        prompt = system_prompt(parts) + list(state["messages"])
        reply = await call_model(parts.model, prompt, config, parts.max_retries)
        return {"messages": [reply]}

    graph = StateGraph(parts.state_schema)
    graph.add_node(NODE, chatbot)
    graph.add_edge(START, NODE)
    graph.add_edge(NODE, END)
    return graph.compile(checkpointer=parts.checkpointer)


def update_node(_messages: Sequence[BaseMessage]) -> str:
    return NODE


AGENT_TYPE = AgentType(
    id="chatbot",
    name="Chatbot",
    description="Answers from the conversation and its instructions alone.",
    build=build,
    values_as_list=True,
    update_node=update_node,
    model_fields=("llm_type", "agent_type", "model"),
)
