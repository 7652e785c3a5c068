"""``/runs``: background and streamed runs, their status, and the config schemas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loom.api.deps import CurrentUser, Factory, OwnRun, Runs, SettingsDep
from loom.api.messages import MaybeMessagesIn, MessageIn, wire_input
from loom.api.openapi import errors, event_stream
from loom.api.routing import SlashRouter
from loom.api.stream import StreamFormat, metadata_frame, sse_stream
from loom.errors import NotFound
from loom.limits import StreamSlot
from loom.runs import schemas
from loom.runs.service import RunRequest, RunService
from loom.sse import EventSourceResponse, response
from loom.storage.runs import MultitaskStrategy, OnDisconnect, Run
from loom.validation import storable

router = SlashRouter(prefix="/runs", tags=["runs"])

STREAM = event_stream("Server-Sent Events: metadata, data..., (error), end")


class RunIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None = None
    input: list[MessageIn] | MaybeMessagesIn | None = Field(
        default=None,
        description='{"messages": [...]} or a bare list of messages; null continues a paused run',
    )
    config: dict[str, Any] | None = None
    multitask_strategy: MultitaskStrategy = Field(
        default="reject",
        description="When the thread already has a run: reject (409), enqueue (run after it), "
        "interrupt (stop it, keep its progress, continue from there) or rollback (cancel it "
        "and undo its work)",
    )
    on_disconnect: OnDisconnect = Field(
        default="continue",
        description="POST /runs/stream only: what happens to the run if the client goes away",
    )

    @field_validator("input", "config", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")

    def request(self) -> RunRequest:
        return RunRequest(
            thread_id=self.thread_id,
            assistant_id=self.assistant_id,
            input=wire_input(self.input),
            config=self.config,
            multitask_strategy=self.multitask_strategy,
            on_disconnect=self.on_disconnect,
        )


class RunOut(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    multitask_strategy: str
    on_disconnect: str
    attempt: int

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls(
            run_id=str(run.run_id),
            thread_id=str(run.thread_id),
            assistant_id=str(run.assistant_id) if run.assistant_id else None,
            status=run.status,
            created_at=run.created_at,
            updated_at=run.updated_at,
            error=run.error,
            multitask_strategy=run.multitask_strategy,
            on_disconnect=run.on_disconnect,
            attempt=run.attempt,
        )


Format = Annotated[
    StreamFormat,
    Query(description="opengpts (default): whole message list per event; compact: deltas"),
]


def _last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return 0


async def _stream(
    runs: RunService,
    run: Run,
    slot: StreamSlot,
    fmt: StreamFormat,
    heartbeat: float,
    after: int = 0,
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    run_id = str(run.run_id)
    try:
        replay = await runs.history(run.run_id, after) if after and fmt == "opengpts" else []
    except BaseException:
        await slot.release()
        raise
    first = b"" if after else metadata_frame(run_id, str(run.thread_id))
    finished = False

    def ended() -> None:
        nonlocal finished
        finished = True

    async def body() -> Any:
        try:
            async for chunk in sse_stream(
                runs.follow(run.run_id, after, heartbeat, slot),
                fmt,
                first=first,
                replay=replay,
                on_end=ended,
            ):
                yield chunk
        finally:
            if cancel_on_disconnect and not finished:
                # The client went away before the end: the run's policy says stop it.
                asyncio.get_running_loop().create_task(runs.stop(run))

    return response(body())


@router.post("", response_model=RunOut, responses=errors(409))
async def create_run(body: RunIn, user: CurrentUser, runs: Runs) -> RunOut:
    """Start a background run (queued, executed by a worker); poll ``GET /runs/{id}``."""
    return RunOut.of(await runs.create(user.user_id, body.request()))


@router.post("/stream", responses={**STREAM, **errors(409)})
async def stream_run(
    body: RunIn, user: CurrentUser, runs: Runs, settings: SettingsDep, format: Format = "opengpts"
) -> EventSourceResponse:
    """Start a run and stream it; ``on_disconnect`` says what a dropped client does to it."""
    run, slot = await runs.create_streamed(user.user_id, body.request())
    return await _stream(
        runs,
        run,
        slot,
        format,
        settings.stream_heartbeat_seconds,
        cancel_on_disconnect=run.on_disconnect == "cancel",
    )


@router.get("/config_schema")
async def config_schema(factory: Factory) -> dict[str, Any]:
    return schemas.config_schema(factory)


@router.get("/input_schema")
async def input_schema() -> dict[str, Any]:
    return schemas.INPUT_SCHEMA


@router.get("/output_schema")
async def output_schema() -> dict[str, Any]:
    return schemas.OUTPUT_SCHEMA


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run: OwnRun) -> RunOut:
    return RunOut.of(run)


@router.get("/{run_id}/stream", responses=STREAM)
async def join_run_stream(
    run: OwnRun,
    user: CurrentUser,
    runs: Runs,
    settings: SettingsDep,
    format: Format = "opengpts",
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event id (sent by EventSource on reconnect)"),
    ] = None,
) -> EventSourceResponse:
    """Follow a run from any server process: from its start, or after ``Last-Event-ID``."""
    if not await runs.has_log(run):
        raise NotFound("This run has no live stream; read the thread state instead")
    slot = await runs.stream_slot(user.user_id)
    return await _stream(
        runs, run, slot, format, settings.stream_heartbeat_seconds, _last_event_id(last_event_id)
    )


@router.post("/{run_id}/cancel", response_model=RunOut)
async def cancel_run(run: OwnRun, runs: Runs) -> RunOut:
    """Stop a pending or running run (wherever it executes) and answer its final record."""
    return RunOut.of(await runs.stop(run))
