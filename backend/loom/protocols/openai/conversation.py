"""A thread's messages as the Assistants API sees them, read and written through Loom's
thread state (``ThreadStateService``): nothing of a message is stored twice.

A message's wire id is its LangChain id (:mod:`.ids`). Its ``created_at``, the run and assistant
that wrote it, its ``metadata`` and ``attachments`` are kept in ``openai_message``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from openai.types.beta.threads import Message

from loom.errors import InvalidInput
from loom.storage.threads import Thread

from . import ids
from .convert import human_content, is_visible, message_object, passages_before, text_of
from .deps import Core
from .knowledge import ingest_file, own_files
from .wire import MessageCreate, epoch

CLIENT_TOOLS_NODE = "client_tools"


async def snapshot(core: Core, thread: Thread) -> tuple[list[dict[str, Any]], list[str]]:
    """The thread's messages (LangChain dicts, in order) and the nodes it would run next."""
    state = await core.state.get_state(thread)
    values = state["values"]
    messages = values if isinstance(values, list) else values.get("messages") or []
    return list(messages), list(state.get("next") or [])


def pending_calls(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls of the last AI message no tool message answers (LangChain tool calls)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("type") == "ai":
            answered = {
                m.get("tool_call_id") for m in messages[index + 1 :] if m.get("type") == "tool"
            }
            return [c for c in message.get("tool_calls") or [] if c.get("id") not in answered]
    return []


async def ensure_idle(core: Core, thread: Thread) -> None:
    """OpenAI's rule: no new message or run while a run is active or waits for tool outputs."""
    active = await core.run_rows.active_ids(thread.thread_id)
    waiting = False
    if not active:
        _, next_nodes = await snapshot(core, thread)
        waiting = CLIENT_TOOLS_NODE in next_nodes
    if active or waiting:
        last = await core.store.last_run(thread.thread_id)
        run = f" {ids.wire('run', last.run_id)}" if last is not None else ""
        raise InvalidInput(
            f"Thread {ids.wire('thread', thread.thread_id)} already has an active run{run}."
        )


def new_message(body: MessageCreate) -> dict[str, Any]:
    return {
        "type": "human" if body.role == "user" else "ai",
        "content": human_content(body.content),
        "id": str(uuid.uuid4()),
    }


async def attach(
    core: Core, user_id: str, thread: Thread, body: MessageCreate
) -> list[dict[str, Any]]:
    """Ingest a message's ``file_search`` attachments into the thread; their wire form."""
    out: list[dict[str, Any]] = []
    for attachment in body.attachments or []:
        tools = [t.get("type") for t in attachment.tools or []]
        if "code_interpreter" in tools:
            raise InvalidInput("code_interpreter is not supported: Loom does not run code")
        [file] = await own_files(core, user_id, [attachment.file_id])
        if "file_search" in tools:
            error, _ = await ingest_file(core, user_id, "thread", thread.thread_id, file)
            if error is not None:
                raise InvalidInput(f"{file.filename}: {error['message']}")
        out.append(
            {
                "file_id": ids.wire("file", file.file_id),
                "tools": [{"type": t} for t in tools if t],
            }
        )
    return out


async def add_messages(
    core: Core, user_id: str, thread: Thread, bodies: Sequence[MessageCreate]
) -> list[dict[str, Any]]:
    """Append messages to the thread's state (with their records); the LangChain dicts."""
    if not bodies:
        return []
    messages = [new_message(b) for b in bodies]
    attachments = [await attach(core, user_id, thread, b) for b in bodies]
    await core.state.update_state(thread, messages)
    for body, message, files in zip(bodies, messages, attachments, strict=True):
        await core.store.save_message(
            thread.thread_id, message["id"], metadata=body.metadata or {}, attachments=files
        )
    return messages


def thread_name(bodies: Sequence[MessageCreate] | None) -> str:
    for body in bodies or []:
        if body.role == "user":
            text = " ".join(text_of(human_content(body.content)).split())
            if text:
                return text[:60]
    return "New thread"


async def message_objects(
    core: Core,
    thread: Thread,
    messages: Sequence[dict[str, Any]],
    indices: Sequence[int],
) -> list[Message]:
    """Assistants messages for ``messages[i]`` of each of ``indices``."""
    chosen = [messages[i] for i in indices]
    records = await core.store.messages(thread.thread_id, [str(m.get("id")) for m in chosen])
    out = []
    for index, message in zip(indices, chosen, strict=True):
        record = records.get(str(message.get("id")))
        out.append(
            message_object(
                message,
                thread_id=ids.wire("thread", thread.thread_id),
                created_at=epoch(record.created_at if record else thread.created_at) or 0,
                assistant_id=ids.wire_optional(
                    "assistant", record.assistant_id if record else thread.assistant_id
                ),
                run_id=ids.wire_optional("run", record.run_id if record else None),
                metadata=record.metadata if record else {},
                attachments=record.attachments if record else [],
                passages=passages_before(messages, index),
            )
        )
    return out


def visible_indices(messages: Sequence[dict[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if is_visible(m)]


async def find_message(core: Core, thread: Thread, raw_id: str) -> tuple[list[dict[str, Any]], int]:
    message_id = ids.message_parse(raw_id)
    messages, _ = await snapshot(core, thread)
    for index in visible_indices(messages):
        if messages[index].get("id") == message_id:
            return messages, index
    raise ids.not_found("message", raw_id)
