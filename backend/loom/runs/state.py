"""Thread state and history, read and written through the thread's compiled graph.

State is always rebuilt by LangGraph (``DeltaChannel`` replays the parent chain), never read
from checkpoint rows directly.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from loom.agents.graphs import CompiledGraph
from loom.agents.registry import AgentFactory, ResolvedAssistant
from loom.agents.serialize import message_to_dict
from loom.agents.state import messages_of, with_ids
from loom.errors import Conflict, InvalidInput
from loom.runs import branches
from loom.runs.executor import FALLBACK_CONFIG
from loom.runs.service import RunService
from loom.storage.assistants import AssistantRepo
from loom.storage.checkpoints import LoomSaver
from loom.storage.runs import RunRepo
from loom.storage.threads import Thread, ThreadRepo


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


def _checkpoint_config(thread: Thread, checkpoint_id: str) -> dict[str, Any]:
    return {
        "configurable": {
            "thread_id": str(thread.thread_id),
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }


def _entry(thread: Thread, row: dict[str, Any]) -> dict[str, Any]:
    """A history entry of a checkpoint row (no state)."""
    parent = row["parent_checkpoint_id"]
    ts = row["ts"]
    return {
        "checkpoint_id": row["checkpoint_id"],
        "config": _checkpoint_config(thread, row["checkpoint_id"]),
        "parent": _checkpoint_config(thread, parent) if parent else None,
        "metadata": row["metadata"],
        "created_at": datetime.fromisoformat(ts).isoformat() if ts else None,
    }


def _incoming(values: Any) -> list[Any]:
    if isinstance(values, dict):
        values = values.get("messages")
    if not isinstance(values, list):
        raise InvalidInput('values must be a list of messages or {"messages": [...]}')
    return values


class ThreadStateService:
    def __init__(
        self,
        *,
        threads: ThreadRepo,
        assistants: AssistantRepo,
        runs: RunRepo,
        run_service: RunService,
        factory: AgentFactory,
        checkpointer: LoomSaver,
    ) -> None:
        self._threads = threads
        self._assistants = assistants
        self._runs = runs
        self._run_service = run_service
        self._factory = factory
        self._checkpointer = checkpointer

    async def graph(self, thread: Thread) -> tuple[CompiledGraph, ResolvedAssistant]:
        """The graph of the thread's assistant (a plain chatbot when it was deleted)."""
        config = FALLBACK_CONFIG
        if thread.assistant_id is not None:
            assistant = await self._assistants.get_visible(thread.user_id, thread.assistant_id)
            if assistant is not None:
                config = assistant.config
        return self._factory.graph(config)

    async def get_state(self, thread: Thread) -> dict[str, Any]:
        graph, resolved = await self.graph(thread)
        snapshot = await graph.aget_state(_config(thread))
        return {"values": _values(snapshot, resolved), "next": list(snapshot.next)}

    async def update_state(self, thread: Thread, values: Any) -> dict[str, Any]:
        """Append messages, or replace those whose id matches (e.g. editing a pending tool
        call)."""
        try:
            messages = with_ids(_incoming(values))
        except ValueError as exc:
            raise InvalidInput(f"Invalid values: {exc}") from exc
        if await self._runs.active_ids(thread.thread_id):
            raise Conflict("This thread has a run in progress; its state cannot change now")
        graph, resolved = await self.graph(thread)
        if messages:
            await graph.aupdate_state(
                _config(thread),
                {"messages": messages},
                as_node=resolved.agent_type.update_node(messages),
            )
        await self._threads.touch(thread.thread_id)
        return await self.get_state(thread)

    async def run_messages(self, thread: Thread, run_id: uuid.UUID) -> list[dict[str, Any]]:
        """The messages a run added or replaced, in thread order (``[]`` if it wrote none).

        Read from the run's own checkpoints: the thread's state after its last one compared
        with the state before its first one.
        """
        config: RunnableConfig = {"configurable": {"thread_id": str(thread.thread_id)}}
        newest = oldest = None
        async for item in self._checkpointer.alist(config, filter={"run_id": str(run_id)}):
            newest = newest or item
            oldest = item
        if newest is None or oldest is None:
            return []
        graph, _ = await self.graph(thread)
        after = messages_of((await graph.aget_state(newest.config)).values)
        before: dict[Any, dict[str, Any]] = {}
        if oldest.parent_config is not None:
            parent = await graph.aget_state(oldest.parent_config)
            before = {m.id: message_to_dict(m) for m in messages_of(parent.values)}
        out = []
        for message in after:
            data = message_to_dict(message)
            if before.get(message.id) != data:
                out.append(data)
        return out

    async def history(
        self,
        thread: Thread,
        limit: int,
        before: str | None,
        *,
        values: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The thread's checkpoints, newest first (those before ``before``; only those whose
        metadata contains ``metadata``): ``checkpoint_id``, ``config``, ``parent``,
        ``metadata``, ``created_at``, and with ``values`` the state then (``values``,
        ``next``). Without, no state is rebuilt: the checkpoints' own rows are read."""
        if not values:
            return [
                _entry(thread, row)
                for row in await self._checkpointer.list_metadata(
                    str(thread.thread_id), limit, before, metadata
                )
            ]
        graph, resolved = await self.graph(thread)
        before_config = _config(thread, before) if before else None
        out: list[dict[str, Any]] = []
        async for snapshot in graph.aget_state_history(
            _config(thread), limit=limit, before=before_config, filter=metadata or None
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

    async def branches(self, thread: Thread) -> dict[str, Any]:
        """Per message of the thread's head: its time, fork point and sibling branches."""
        graph, _ = await self.graph(thread)
        return await branches.tree(graph, str(thread.thread_id))

    async def switch_branch(self, thread: Thread, checkpoint_id: str) -> dict[str, Any]:
        """Make the branch ending at ``checkpoint_id`` the thread's head; its new state."""
        if await self._runs.active_ids(thread.thread_id):
            raise Conflict("This thread has a run in progress; its branch cannot change now")
        graph, _ = await self.graph(thread)
        if not await branches.switch(graph, str(thread.thread_id), checkpoint_id):
            # The thread exists: an id that is not one of its checkpoints conflicts with its
            # history (a 404 would say the thread is missing).
            raise Conflict("This thread has no checkpoint with that id")
        await self._threads.touch(thread.thread_id)
        return await self.get_state(thread)

    async def delete_thread(self, user_id: str, thread: Thread) -> None:
        """Delete a thread: stop its runs, then its row and documents, and its checkpoints."""
        for run_id in await self._runs.active_ids(thread.thread_id):
            run = await self._runs.get(run_id)
            if run is not None:
                await self._run_service.stop(run)
        if await self._threads.delete(user_id, thread.thread_id):
            await self._checkpointer.adelete_thread(str(thread.thread_id))
