"""``/v1/threads/{id}/runs``, ``/v1/threads/runs`` and run steps.

Thin routes over :mod:`.runner`: parse, check ownership (dependencies), call it, shape the
answer. ``stream: true`` answers with the run's events (:mod:`.stream`); a client that goes
away does not stop the run. Polling clients are told to poll every 200 ms
(``openai-poll-after-ms``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from loom.api.openapi import event_stream
from loom.limits import StreamSlot
from loom.runs.events import EndEvent
from loom.sse import HEARTBEAT, response
from loom.storage.assistants import Assistant
from loom.storage.runs import Run
from loom.storage.threads import Thread

from . import ids, runner
from .conversation import snapshot
from .deps import ClientUser, Core, CoreDep, OwnRun, OwnThread
from .knowledge import check_resources
from .objects import StepIds, run_object, tool_outputs, tool_step
from .store import RunRecord
from .stream import DONE, EventWriter, event
from .threads import create as create_thread
from .threads import thread_object
from .wire import (
    Order,
    RunCreate,
    RunUpdate,
    SubmitToolOutputs,
    ThreadRunCreate,
    page,
    paginate,
    respond,
)

STREAM = event_stream("With stream=true: the run's Server-Sent Events; else the run", json_too=True)
router = APIRouter(prefix="/v1/threads", tags=["openai assistants"])

POLL_HEADERS = {"openai-poll-after-ms": "200"}


async def current(core: Core, record: RunRecord, thread: Thread) -> JSONResponse:
    snap = await runner.snapshot_of(core, record, thread)
    record = await runner.settle(core, record, thread, snap)
    started = await core.run_rows.get(record.parts[0])
    answer = respond(run_object(record, snap, started))
    answer.headers.update(POLL_HEADERS)
    return answer


def _step_ids(record: RunRecord) -> StepIds:
    return StepIds(
        thread=ids.wire("thread", record.thread_id),
        run=ids.wire("run", record.run_id),
        assistant=ids.wire("assistant", record.assistant_id),
    )


@asynccontextmanager
async def _stream_slot(core: Core, user: ClientUser, wanted: bool) -> AsyncIterator[StreamSlot]:
    """A place among the caller's open streams when the run is streamed (taken before the
    run starts; given back if the stream never does)."""
    slot = await core.runs.stream_slot(user.user_id) if wanted else StreamSlot(None, "", "")
    try:
        yield slot
    except BaseException:
        await slot.release()
        raise


async def stream(
    core: Core,
    record: RunRecord,
    thread: Thread,
    part: Run,
    prelude: Sequence[bytes],
    slot: StreamSlot,
    earlier: Sequence[dict[str, Any]] = (),
) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"".join(prelude)
        writer = EventWriter(_step_ids(record), earlier)
        heartbeat = core.settings.stream_heartbeat_seconds
        async for batch in core.runs.follow(part.run_id, 0, heartbeat, slot):
            if not batch:
                yield HEARTBEAT
                continue
            out: list[bytes] = []
            for envelope in batch:
                if not isinstance(envelope.event, EndEvent):
                    out.extend(writer.feed(envelope))
                    continue
                snap = await runner.snapshot_of(core, record, thread)
                settled = await runner.settle(core, record, thread, snap)
                out.extend(writer.finish(envelope.seq, snap.status))
                started = await core.run_rows.get(record.parts[0])
                final = run_object(settled, snap, started)
                out.append(event(f"thread.run.{snap.status}", final, envelope.seq))
                out.append(DONE)
                yield b"".join(out)
                return
            if out:
                yield b"".join(out)

    return response(body())


async def _opening(core: Core, record: RunRecord, thread: Thread, *, new: bool) -> list[bytes]:
    snap = await runner.snapshot_of(core, record, thread)
    started = await core.run_rows.get(record.parts[0])
    frames = []
    if new:
        created = run_object(record, snap, started, status="queued")
        frames.append(event("thread.run.created", created))
    frames.append(event("thread.run.queued", run_object(record, snap, started, status="queued")))
    frames.append(
        event("thread.run.in_progress", run_object(record, snap, started, status="in_progress"))
    )
    return frames


@router.post("/{thread_id}/runs", responses=STREAM)
async def create_run(
    body: RunCreate, thread: OwnThread, user: ClientUser, core: CoreDep
) -> Response:
    assistant = await _assistant(core, user, body.assistant_id)
    async with _stream_slot(core, user, bool(body.stream)) as slot:
        record, thread, part = await runner.start(
            core,
            user,
            thread,
            assistant,
            body,
            additional_instructions=body.additional_instructions,
            additional_messages=body.additional_messages or [],
        )
        if body.stream:
            opening = await _opening(core, record, thread, new=True)
            return await stream(core, record, thread, part, opening, slot)
    return await current(core, record, thread)


@router.post("/runs", responses=STREAM)
async def create_thread_and_run(body: ThreadRunCreate, user: ClientUser, core: CoreDep) -> Response:
    assistant = await _assistant(core, user, body.assistant_id)
    async with _stream_slot(core, user, bool(body.stream)) as slot:
        thread = await create_thread(core, user, body.thread)
        resources = None
        if body.tool_resources is not None:
            resources = await check_resources(core, user.user_id, body.tool_resources)
        record, thread, part = await runner.start(
            core, user, thread, assistant, body, resources=resources
        )
        if body.stream:
            opening = [event("thread.created", await thread_object(core, thread))]
            opening += await _opening(core, record, thread, new=True)
            return await stream(core, record, thread, part, opening, slot)
    return await current(core, record, thread)


@router.get("/{thread_id}/runs")
async def list_runs(
    thread: OwnThread,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> JSONResponse:
    records = await core.store.runs(thread.thread_id)
    chosen, more = paginate(
        records,
        lambda r: ids.wire("run", r.run_id),
        order=order,
        limit=limit,
        after=after and ids.wire("run", ids.parse("run", after)),
        before=before and ids.wire("run", ids.parse("run", before)),
    )
    data = []
    for record in chosen:
        snap = await runner.snapshot_of(core, record, thread)
        record = await runner.settle(core, record, thread, snap)
        data.append(run_object(record, snap, await core.run_rows.get(record.parts[0])))
    return respond(page(data, more))


@router.get("/{thread_id}/runs/{run_id}")
async def get_run(record: OwnRun, thread: OwnThread, core: CoreDep) -> JSONResponse:
    return await current(core, record, thread)


@router.post("/{thread_id}/runs/{run_id}")
async def modify_run(
    body: RunUpdate, record: OwnRun, thread: OwnThread, core: CoreDep
) -> JSONResponse:
    if "metadata" in body.model_fields_set:
        record = await core.store.set_run_metadata(record.run_id, body.metadata or {})
    return await current(core, record, thread)


@router.post("/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(record: OwnRun, thread: OwnThread, core: CoreDep) -> JSONResponse:
    await runner.cancel(core, thread, record)
    found = await core.store.run(record.user_id, thread.thread_id, record.run_id)
    return await current(core, found or record, thread)


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs", responses=STREAM)
async def submit_tool_outputs(
    body: SubmitToolOutputs, record: OwnRun, thread: OwnThread, user: ClientUser, core: CoreDep
) -> Response:
    async with _stream_slot(core, user, bool(body.stream)) as slot:
        record, part = await runner.submit(core, user, thread, record, body.tool_outputs)
        if not body.stream:
            return await current(core, record, thread)
        opening: list[bytes] = []
        messages, _ = await snapshot(core, thread)
        outputs = tool_outputs(messages)
        answered = next((m for m in reversed(messages) if m.get("type") == "ai"), None)
        if answered is not None and answered.get("tool_calls"):
            now = int(time.time())
            step = tool_step(answered, outputs, _step_ids(record), "completed", now, now)
            opening.append(event("thread.run.step.completed", step))
        opening += await _opening(core, record, thread, new=False)
        last_user = max((i for i, m in enumerate(messages) if m.get("type") == "human"), default=-1)
        return await stream(core, record, thread, part, opening, slot, messages[last_user + 1 :])


@router.get("/{thread_id}/runs/{run_id}/steps")
async def list_steps(
    record: OwnRun,
    thread: OwnThread,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> JSONResponse:
    snap = await runner.snapshot_of(core, record, thread)
    steps = await runner.steps(core, record, thread, snap)
    chosen, more = paginate(
        steps, lambda s: s.id, order=order, limit=limit, after=after, before=before
    )
    return respond(page(chosen, more))


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}")
async def get_step(step_id: str, record: OwnRun, thread: OwnThread, core: CoreDep) -> JSONResponse:
    ids.step_parse(step_id)
    snap = await runner.snapshot_of(core, record, thread)
    for step in await runner.steps(core, record, thread, snap):
        if step.id == step_id:
            return respond(step)
    raise ids.not_found("run_step", step_id)


async def _assistant(core: Core, user: ClientUser, raw: str) -> Assistant:
    found = await core.assistants.get_visible(user.user_id, ids.parse("assistant", raw))
    if found is None:
        raise ids.not_found("assistant", raw)
    return found
