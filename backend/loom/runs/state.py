"""Thread state and history, read and written through the thread's compiled graph.

State is always rebuilt by LangGraph (``DeltaChannel`` replays the parent chain), never read
from checkpoint rows directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from loom.agents.graphs import CompiledGraph
from loom.agents.registry import ResolvedAssistant
from loom.agents.serialize import message_to_dict
from loom.agents.state import messages_of, with_ids
from loom.errors import Conflict, InvalidInput
from loom.resources import Resources
from loom.storage.threads import Thread

# A thread whose assistant was deleted is still readable as a plain message list.
_FALLBACK_CONFIG: dict[str, Any] = {"configurable": {"type": "chatbot"}}


async def thread_graph(res: Resources, thread: Thread) -> tuple[CompiledGraph, ResolvedAssistant]:
    config = _FALLBACK_CONFIG
    if thread.assistant_id is not None:
        assistant = await res.assistants.get_visible(thread.user_id, thread.assistant_id)
        if assistant is not None:
            config = assistant.config
    return res.factory.graph(config)


def _config(thread: Thread, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": str(thread.thread_id)}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _values(snapshot: StateSnapshot, resolved: ResolvedAssistant) -> Any:
    messages = [message_to_dict(m) for m in messages_of(snapshot.values)]
    return messages if resolved.agent_type.values_as_list else {"messages": messages}


def _created(snapshot: StateSnapshot) -> str | None:
    if snapshot.created_at is None:
        return None
    return datetime.fromisoformat(snapshot.created_at).isoformat()


async def get_state(res: Resources, thread: Thread) -> dict[str, Any]:
    graph, resolved = await thread_graph(res, thread)
    snapshot = await graph.aget_state(_config(thread))
    return {"values": _values(snapshot, resolved), "next": list(snapshot.next)}


def _incoming(values: Any) -> list[Any]:
    if isinstance(values, dict):
        values = values.get("messages")
    if not isinstance(values, list):
        raise InvalidInput('values must be a list of messages or {"messages": [...]}')
    return values


async def update_state(res: Resources, thread: Thread, values: Any) -> dict[str, Any]:
    """Append messages, or replace those whose id matches (e.g. editing a pending tool call)."""
    try:
        messages = with_ids(_incoming(values))
    except ValueError as exc:
        raise InvalidInput(f"Invalid values: {exc}") from exc
    if await res.runs.active_ids(thread.thread_id):
        raise Conflict("This thread has a run in progress; its state cannot change now")
    graph, resolved = await thread_graph(res, thread)
    if messages:
        await graph.aupdate_state(
            _config(thread),
            {"messages": messages},
            as_node=resolved.agent_type.update_node(messages),
        )
    await res.threads.touch(thread.thread_id)
    return await get_state(res, thread)


async def history(
    res: Resources, thread: Thread, limit: int, before: str | None
) -> list[dict[str, Any]]:
    graph, resolved = await thread_graph(res, thread)
    before_config = _config(thread, before) if before else None
    out: list[dict[str, Any]] = []
    async for snapshot in graph.aget_state_history(
        _config(thread), limit=limit, before=before_config
    ):
        out.append(
            {
                "values": _values(snapshot, resolved),
                "next": list(snapshot.next),
                "checkpoint_id": snapshot.config["configurable"].get("checkpoint_id"),
                "config": snapshot.config,
                "parent": snapshot.parent_config,
                "metadata": snapshot.metadata,
                "created_at": _created(snapshot),
            }
        )
    return out


async def delete_thread(res: Resources, user_id: str, thread: Thread) -> None:
    """Delete a thread: its active run, its row and documents, and its checkpoints."""
    for run_id in await res.runs.active_ids(thread.thread_id):
        await res.executor.cancel(run_id)
    if await res.threads.delete(user_id, thread.thread_id):
        await res.checkpointer.adelete_thread(str(thread.thread_id))
