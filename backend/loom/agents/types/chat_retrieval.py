"""``chat_retrieval`` (RAG): searches the assistant's and the thread's documents, then answers.

The search query is the user's last message, rewritten by the model into a standalone query
once the conversation has more than one question. The retrieved context is recorded in the
thread as a ``retrieval`` tool call and its result (with the passages as its ``artifact``, like
the ``retrieval`` tool's), so it shows in the conversation and can be cited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from loom.agents.graphs import CompiledGraph, GraphParts, call_model
from loom.agents.types.base import AgentType
from loom.tools.base import RetrievedChunk
from loom.tools.retrieval import passage

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


def build(parts: GraphParts) -> CompiledGraph:
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
                stream=False,
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
            artifact=[passage(c) for c in chunks],
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


def update_node(_messages: Sequence[BaseMessage]) -> str:
    return "response"


AGENT_TYPE = AgentType(
    id="chat_retrieval",
    name="RAG bot",
    description="Searches the documents uploaded to the assistant and the thread before answering.",
    build=build,
    values_as_list=False,
    update_node=update_node,
    model_fields=("llm_type", "agent_type", "model"),
    config_fields=frozenset({"retrieval_description"}),
)
