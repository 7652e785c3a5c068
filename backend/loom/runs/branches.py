"""A thread's branches, read from its checkpoint history (for the UI's ``< 2/3 >``).

A run with ``config.configurable.checkpoint_id`` forks the thread from that checkpoint:
LangGraph keeps the old branch, and the thread's head (what the next run continues from) is
its newest checkpoint. :func:`tree` walks the thread's history (newest first, at most
``limit`` checkpoints, each rebuilt by LangGraph, never read from rows) and tells, for each
message of the head's list:

* ``created_at``: when the checkpoint that first held it was written (messages carry no time);
* ``fork_from``: the checkpoint just before it, holding exactly the messages before it (a
  run from there with new input replaces it, with ``input: null`` regenerates it), or
  ``None`` when the history does not have one;
* ``siblings``: when other branches hold another message at this position after the same
  messages before it, each alternative (this one included, oldest first) with the newest
  checkpoint of its branch, which :func:`switch` makes the thread's head again.

Switching copies the chosen checkpoint (LangGraph's ``__copy__``: same values, same parent),
so the copy is the newest checkpoint: every protocol, every tab and every later run see that
branch, and a reload keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from loom.agents.graphs import CompiledGraph
from loom.agents.state import messages_of

# Checkpoints read per request; older ones (and their branches) are not described.
HISTORY_LIMIT = 1000


@dataclass
class _Node:
    checkpoint_id: str
    parent: str | None
    ids: list[str]
    created_at: str | None


def _created(value: str | None) -> str | None:
    return datetime.fromisoformat(value).isoformat() if value else None


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


async def _nodes(graph: CompiledGraph, config: RunnableConfig, limit: int) -> list[_Node]:
    """The thread's checkpoints, newest first."""
    out: list[_Node] = []
    async for snapshot in graph.aget_state_history(config, limit=limit):
        parent = snapshot.parent_config
        out.append(
            _Node(
                checkpoint_id=str(snapshot.config["configurable"]["checkpoint_id"]),
                parent=str(parent["configurable"]["checkpoint_id"]) if parent else None,
                ids=[str(m.id) for m in messages_of(snapshot.values)],
                created_at=_created(snapshot.created_at),
            )
        )
    return out


async def tree(graph: CompiledGraph, thread_id: str, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    nodes = await _nodes(graph, {"configurable": {"thread_id": thread_id}}, limit)
    if not nodes:
        return {"head": None, "messages": []}
    by_id = {n.checkpoint_id: n for n in nodes}
    head = nodes[0]
    # Where each message first appeared (oldest checkpoint holding it) and the one before.
    first: dict[str, _Node] = {}
    for node in reversed(nodes):
        for message_id in node.ids:
            first.setdefault(message_id, node)
    parents = {n.parent for n in nodes}
    leaves = [n for n in nodes if n.checkpoint_id not in parents]  # newest first

    messages: list[dict[str, Any]] = []
    for position, message_id in enumerate(head.ids):
        origin = first.get(message_id)
        before = by_id.get(origin.parent) if origin and origin.parent else None
        fork_from = (
            before.checkpoint_id
            if before is not None and before.ids == head.ids[:position]
            else None
        )
        # Alternatives at this position: leaves that share the messages before it.
        options: dict[str, str] = {message_id: head.checkpoint_id}
        for leaf in leaves:
            if len(leaf.ids) <= position or leaf.ids[position] in options:
                continue
            if _common_prefix(leaf.ids, head.ids) == position:
                options[leaf.ids[position]] = leaf.checkpoint_id  # newest leaf of that branch
        entry: dict[str, Any] = {
            "id": message_id,
            "created_at": origin.created_at if origin else None,
            "fork_from": fork_from,
        }
        if len(options) > 1:

            def when(item: tuple[str, str]) -> str:
                node = first.get(item[0])
                return (node.created_at or "") if node else ""

            entry["siblings"] = [
                {"message_id": mid, "checkpoint_id": cid}
                for mid, cid in sorted(options.items(), key=when)
            ]
        messages.append(entry)
    return {"head": head.checkpoint_id, "messages": messages}


async def switch(graph: CompiledGraph, thread_id: str, checkpoint_id: str) -> bool:
    """Make the branch ending at ``checkpoint_id`` the thread's head; ``False`` when the
    thread has no such checkpoint."""
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
    }
    checkpointer = graph.checkpointer
    if checkpointer is None or isinstance(checkpointer, bool):
        return False
    if await checkpointer.aget_tuple(config) is None:
        return False
    await graph.aupdate_state(config, None, as_node="__copy__")
    return True
