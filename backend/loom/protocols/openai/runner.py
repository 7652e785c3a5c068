"""Assistants runs on Loom runs: start, read, continue with tool outputs, cancel, list steps.

An Assistants run IS a Loom run (``RunService.create``), executed by Loom's workers. Per-run
``instructions``, ``additional_instructions``, ``model`` and ``tools`` become the Loom run's
``overrides``; the vector stores of the assistant's and the thread's ``tool_resources`` its
extra ``namespaces``; ``additional_messages`` its input (the thread's own messages are already
in its state, so a run without them starts with an empty input). A thread is bound to the
assistant of its latest run (a ``/v1`` thread has none until its first run).

``submit_tool_outputs`` posts the outputs as tool messages (``update_state``) and continues
with a new Loom run whose input is ``null`` and whose overrides are the first one's: the
Assistants run is the chain, and its id the id of the first Loom run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loom.agents.config import ConfigError, with_overrides
from loom.auth import User
from loom.errors import InvalidInput
from loom.runs.service import RunRequest
from loom.storage.assistants import Assistant
from loom.storage.runs import Run
from loom.storage.threads import Thread

from . import ids
from .conversation import (
    CLIENT_TOOLS_NODE,
    attach,
    ensure_idle,
    new_message,
    pending_calls,
    snapshot,
)
from .convert import is_visible, loom_tools, openai_tools, sampling
from .deps import Core
from .knowledge import run_namespaces
from .objects import (
    STOPPED,
    Snapshot,
    StepIds,
    message_step,
    status_of,
    tool_outputs,
    tool_step,
    usage_of,
)
from .store import RunRecord
from .wire import MessageCreate, RunOptions, ToolOutput

CANCELLED_OUTPUT = "Error: the run was cancelled before this call's output was submitted."


@dataclass(frozen=True)
class Plan:
    overrides: dict[str, Any]
    model: str
    instructions: str
    tools: list[Any]
    sampling: dict[str, Any]


def plan(core: Core, assistant: Assistant, options: RunOptions, additional: str | None) -> Plan:
    """The Loom overrides of a run's options, and what the run reports it used."""
    try:
        base = core.factory.resolve(assistant.config)
    except ConfigError as exc:
        raise InvalidInput(f"The assistant's config is no longer valid: {exc}") from exc
    overrides: dict[str, Any] = {}
    instructions = base.config.system_message
    if options.instructions is not None:
        instructions = options.instructions
    if additional:
        instructions = f"{instructions}\n\n{additional}" if instructions else additional
    if options.instructions is not None or additional:
        overrides["system_message"] = instructions
    if options.model:
        overrides["model"] = options.model
    if options.tools is not None or options.loom_tools is not None:
        tools, extension = openai_tools(base.config)
        overrides["tools"] = loom_tools(
            options.tools if options.tools is not None else tools,
            options.loom_tools if options.loom_tools is not None else extension,
        )
    given = {k for k in options.model_fields_set if getattr(options, k) is not None}
    overrides.update(sampling(options, given))
    try:
        merged = core.factory.resolve(with_overrides(assistant.config, overrides))
    except ConfigError as exc:
        raise InvalidInput(f"Invalid run: {exc}") from exc
    return Plan(
        overrides,
        merged.model.id,
        instructions,
        openai_tools(merged.config)[0],
        dict(merged.config.model_settings),
    )


async def bind(core: Core, user: User, thread: Thread, assistant: Assistant) -> Thread:
    if thread.assistant_id == assistant.assistant_id:
        return thread
    updated = await core.threads.update(
        user.user_id, thread.thread_id, thread.name, assistant.assistant_id, None
    )
    if updated is None:
        raise ids.not_found("thread", ids.wire("thread", thread.thread_id))
    return updated


async def start(
    core: Core,
    user: User,
    thread: Thread,
    assistant: Assistant,
    options: RunOptions,
    *,
    additional_instructions: str | None = None,
    additional_messages: Sequence[MessageCreate] = (),
    resources: dict[str, Any] | None = None,
) -> tuple[RunRecord, Thread, Run]:
    await ensure_idle(core, thread)
    chosen = plan(core, assistant, options, additional_instructions)
    thread = await bind(core, user, thread, assistant)
    extras = (await core.store.assistant_extras([assistant.assistant_id])).get(
        assistant.assistant_id
    )
    namespaces = await run_namespaces(
        core,
        user.user_id,
        extras.tool_resources if extras else {},
        await core.store.thread_resources(thread.thread_id),
        resources or {},
    )
    inputs = [new_message(m) for m in additional_messages]
    files = [await attach(core, user.user_id, thread, m) for m in additional_messages]
    run = await core.runs.create(
        user.user_id,
        RunRequest(
            thread_id=thread.thread_id,
            assistant_id=assistant.assistant_id,
            input={"messages": inputs},
            config=None,
            overrides=chosen.overrides or None,
            namespaces=namespaces,
        ),
    )
    for body, message, attached in zip(additional_messages, inputs, files, strict=True):
        await core.store.save_message(
            thread.thread_id, message["id"], metadata=body.metadata or {}, attachments=attached
        )
    record = await core.store.create_run(
        RunRecord(
            run_id=run.run_id,
            thread_id=thread.thread_id,
            user_id=user.user_id,
            assistant_id=assistant.assistant_id,
            parts=[run.run_id],
            model=chosen.model,
            instructions=chosen.instructions,
            tools=chosen.tools,
            metadata=options.metadata or {},
            temperature=chosen.sampling.get("temperature"),
            top_p=chosen.sampling.get("top_p"),
            response_format=chosen.sampling.get("response_format"),
            created_at=run.created_at,
        )
    )
    return record, thread, run


async def snapshot_of(core: Core, record: RunRecord, thread: Thread) -> Snapshot:
    part = await core.run_rows.get(record.current)
    pending: list[dict[str, Any]] = []
    waiting = False
    if part is not None and part.status == "interrupted" and record.cancelled_at is None:
        messages, next_nodes = await snapshot(core, thread)
        waiting = CLIENT_TOOLS_NODE in next_nodes
        pending = pending_calls(messages) if waiting else []
    return Snapshot(status_of(part, record, waiting), part, pending)


async def settle(core: Core, record: RunRecord, thread: Thread, snap: Snapshot) -> RunRecord:
    """Once a run has stopped: record which messages it wrote, and its usage."""
    part = snap.part
    if snap.status not in STOPPED or part is None or record.settled_part == part.run_id:
        return record
    written: list[dict[str, Any]] = []
    for part_id in record.parts:
        written.extend(await core.state.run_messages(thread, part_id))
    produced = [str(m.get("id")) for m in written if m.get("type") == "ai"]
    await core.store.record_run_messages(
        thread.thread_id, produced, record.run_id, record.assistant_id
    )
    usage = usage_of(written)
    await core.store.settle(record.run_id, part.run_id, usage)
    return record.model_copy(update={"settled_part": part.run_id, "usage": usage})


async def settle_thread(core: Core, thread: Thread) -> None:
    """Settle the thread's latest run (so its messages know their run)."""
    record = await core.store.last_run(thread.thread_id)
    if record is not None and record.settled_part != record.current:
        await settle(core, record, thread, await snapshot_of(core, record, thread))


async def submit(
    core: Core, user: User, thread: Thread, record: RunRecord, outputs: Sequence[ToolOutput]
) -> tuple[RunRecord, Run]:
    snap = await snapshot_of(core, record, thread)
    if snap.status != "requires_action":
        raise InvalidInput(f'Runs in status "{snap.status}" do not accept tool outputs.')
    pending = {str(c.get("id")): c for c in snap.pending}
    given = [o.tool_call_id for o in outputs]
    unknown = [i for i in given if i not in pending]
    if unknown:
        raise InvalidInput(f"No tool call with id '{unknown[0]}' awaits an output.")
    missing = [i for i in pending if i not in given]
    if missing or len(set(given)) != len(given):
        raise InvalidInput(f"Expected exactly one output for each of: {', '.join(pending)}.")
    await core.state.update_state(
        thread,
        [
            {
                "type": "tool",
                "tool_call_id": o.tool_call_id,
                "name": pending[o.tool_call_id].get("name"),
                "content": o.output,
                "id": str(uuid.uuid4()),
            }
            for o in outputs
        ],
    )
    first = await core.run_rows.get(record.parts[0])
    run = await core.runs.create(
        user.user_id,
        RunRequest(
            thread_id=thread.thread_id,
            assistant_id=None,
            input=None,
            config=None,
            overrides=first.overrides if first is not None else None,
            namespaces=tuple(first.namespaces) if first is not None else (),
        ),
    )
    return await core.store.add_part(record.run_id, run.run_id), run


async def cancel(core: Core, thread: Thread, record: RunRecord) -> None:
    snap = await snapshot_of(core, record, thread)
    if snap.status == "requires_action":
        await core.state.update_state(
            thread,
            [
                {
                    "type": "tool",
                    "tool_call_id": c.get("id"),
                    "name": c.get("name"),
                    "content": CANCELLED_OUTPUT,
                    "status": "error",
                    "id": str(uuid.uuid4()),
                }
                for c in snap.pending
            ],
        )
        await core.store.mark_cancelled(record.run_id)
    elif snap.status in ("queued", "in_progress", "cancelling") and snap.part is not None:
        await core.runs.stop(snap.part)
    else:
        raise InvalidInput(f"Cannot cancel run with status '{snap.status}'.")


async def steps(core: Core, record: RunRecord, thread: Thread, snap: Snapshot) -> list[Any]:
    """The run's steps, oldest first."""
    messages, _ = await snapshot(core, thread)
    outputs = tool_outputs(messages)
    step_ids = StepIds(
        thread=ids.wire("thread", record.thread_id),
        run=ids.wire("run", record.run_id),
        assistant=ids.wire("assistant", record.assistant_id),
    )
    out: list[Any] = []
    for part_id in record.parts:
        part = await core.run_rows.get(part_id)
        if part is None:
            continue
        created = int((part.started_at or part.created_at).timestamp())
        done = int(part.ended_at.timestamp()) if part.ended_at else None
        for message in await core.state.run_messages(thread, part_id):
            if message.get("type") != "ai":
                continue
            if is_visible(message):
                out.append(message_step(message, step_ids, "completed", created, done))
            calls = message.get("tool_calls") or []
            if calls:
                answered = all(str(c.get("id")) in outputs for c in calls)
                status = "completed"
                if not answered and snap.status == "requires_action":
                    status, done_at = "in_progress", None
                elif not answered and snap.status in ("cancelled", "failed"):
                    status, done_at = snap.status, done
                else:
                    done_at = done
                out.append(tool_step(message, outputs, step_ids, status, created, done_at))
    return out
