"""A thread's branches, read from its checkpoints (for the UI's ``< 2/3 >``).

A run with ``config.configurable.checkpoint_id`` forks the thread from that checkpoint:
LangGraph keeps the old branch, and the thread's head (what the next run continues from) is
its newest checkpoint. :func:`tree` tells, for each message of the head's list:

* ``created_at``: when the checkpoint that first held it was written (messages carry no time);
* ``fork_from``: the checkpoint just before it, holding exactly the messages before it (a
  run from there with new input replaces it, with ``input: null`` regenerates it), or
  ``None`` when there is none;
* ``siblings``: when other branches hold another message at this position after the same
  messages before it, each alternative (this one included, oldest first) with the newest
  checkpoint of its branch, which :func:`switch` makes the thread's head again.

Cost is linear in the thread's size: the checkpoints are listed once through the saver
(``alist``: parents, times, and the messages each step wrote), LangGraph rebuilds the state of
the head and of the newest leaves only, and the head's ancestors' message lists are derived
backwards from the head's (each ancestor holds its child's messages minus those its step
wrote). Nothing reads checkpoint rows directly.

Switching copies the chosen checkpoint (LangGraph's ``__copy__``: same values, same parent),
so the copy is the newest checkpoint: every protocol, every tab and every later run see that
branch, and a reload keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from loom.agents.graphs import CompiledGraph
from loom.agents.state import messages_of

# Other branches are found among this many newest leaves of the checkpoint tree.
MAX_LEAVES = 30
CHANNEL = "messages"


@dataclass
class _Node:
    checkpoint_id: str
    parent: str | None
    created_at: str | None
    written: set[str] = field(default_factory=set)  # message ids its step wrote


def _created(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _ids(value: Any) -> Iterable[str]:
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        message_id = getattr(item, "id", None)
        if message_id is None and isinstance(item, dict):
            message_id = item.get("id")
        if isinstance(message_id, str):
            yield message_id


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


async def _nodes(graph: CompiledGraph, thread_id: str) -> list[_Node]:
    """The thread's checkpoints, newest first."""
    checkpointer = graph.checkpointer
    if checkpointer is None or isinstance(checkpointer, bool):
        return []
    out: list[_Node] = []
    async for item in checkpointer.alist({"configurable": {"thread_id": thread_id}}):
        parent = item.parent_config
        node = _Node(
            checkpoint_id=str(item.config["configurable"]["checkpoint_id"]),
            parent=str(parent["configurable"]["checkpoint_id"]) if parent else None,
            created_at=_created(item.checkpoint.get("ts")),
        )
        for write in item.pending_writes or ():
            if write[1] == CHANNEL:
                node.written.update(_ids(write[2]))
        out.append(node)
    return out


async def _message_ids(graph: CompiledGraph, thread_id: str, checkpoint_id: str) -> list[str]:
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
    }
    snapshot = await graph.aget_state(config)
    return [str(m.id) for m in messages_of(snapshot.values)]


async def tree(graph: CompiledGraph, thread_id: str) -> dict[str, Any]:
    nodes = await _nodes(graph, thread_id)
    if not nodes:
        return {"head": None, "messages": []}
    by_id = {n.checkpoint_id: n for n in nodes}
    head = nodes[0]
    head_ids = await _message_ids(graph, thread_id, head.checkpoint_id)

    # Back from the head: each ancestor's messages, and where each message first appeared.
    states: dict[str, list[str]] = {head.checkpoint_id: head_ids}
    first: dict[str, _Node] = {}
    child, child_ids = head, head_ids
    while child.parent is not None and child.parent in by_id:
        parent = by_id[child.parent]
        for message_id in parent.written.intersection(child_ids):
            first[message_id] = child
        child_ids = [m for m in child_ids if m not in parent.written]
        states[parent.checkpoint_id] = child_ids
        child = parent
    for message_id in child_ids:  # there from the start (e.g. a thread created with state)
        first.setdefault(message_id, child)

    # Other branches: the newest leaves of the tree, by their messages.
    parents = {n.parent for n in nodes}
    leaves: list[tuple[_Node, list[str]]] = [(head, head_ids)]
    for node in nodes[1:]:
        if len(leaves) > MAX_LEAVES:
            break
        if node.checkpoint_id not in parents:
            leaves.append((node, await _message_ids(graph, thread_id, node.checkpoint_id)))
    # When each message was written: the oldest checkpoint its step produced (a copy made by
    # a branch switch shares the step, and is newer).
    created: dict[str, str] = {}
    for node in nodes:
        step = by_id.get(node.parent) if node.parent else None
        if step is None or not node.created_at:
            continue
        for message_id in step.written:
            if message_id not in created or node.created_at < created[message_id]:
                created[message_id] = node.created_at

    def when(message_id: str) -> str:
        origin = first.get(message_id)
        return created.get(message_id) or (origin.created_at if origin else None) or ""

    messages: list[dict[str, Any]] = []
    for position, message_id in enumerate(head_ids):
        origin = first.get(message_id)
        before = origin.parent if origin is not None else None
        fork_from = (
            before if before is not None and len(states.get(before, ())) == position else None
        )
        options: dict[str, str] = {message_id: head.checkpoint_id}
        for leaf, ids in leaves[1:]:  # newest first: each option's newest branch
            if len(ids) <= position or ids[position] in options:
                continue
            if _common_prefix(ids, head_ids) == position:
                options[ids[position]] = leaf.checkpoint_id
        entry: dict[str, Any] = {
            "id": message_id,
            "created_at": when(message_id) or None,
            "fork_from": fork_from,
        }
        if len(options) > 1:
            entry["siblings"] = [
                {"message_id": mid, "checkpoint_id": cid}
                for mid, cid in sorted(options.items(), key=lambda item: when(item[0]))
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
