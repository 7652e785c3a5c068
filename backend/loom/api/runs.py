"""``/runs``: background and streamed runs, their status, and the config schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from loom.api.deps import CurrentUser, OwnRun, Res
from loom.api.routing import SlashRouter
from loom.errors import NotFound
from loom.runs import schemas
from loom.runs.service import RunIn, start_run
from loom.runs.sse import StreamFormat, sse_stream
from loom.storage.runs import Run

router = SlashRouter(prefix="/runs", tags=["runs"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class RunOut(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None

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
        )


Format = Annotated[
    StreamFormat,
    Query(description="opengpts (default): whole message list per event; compact: deltas"),
]


def _stream(res: Res, run_id: str, fmt: StreamFormat) -> StreamingResponse:
    events = res.broker.subscribe(run_id, heartbeat=res.settings.stream_heartbeat_seconds)
    return StreamingResponse(
        sse_stream(events, fmt), media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.post("", response_model=RunOut)
async def create_run(body: RunIn, user: CurrentUser, res: Res) -> RunOut:
    return RunOut.of(await start_run(res, user, body))


@router.post("/stream")
async def stream_run(
    body: RunIn, user: CurrentUser, res: Res, format: Format = "opengpts"
) -> StreamingResponse:
    run = await start_run(res, user, body)
    return _stream(res, str(run.run_id), format)


@router.get("/config_schema")
async def config_schema(res: Res) -> dict[str, Any]:
    return schemas.config_schema(res.factory)


@router.get("/input_schema")
async def input_schema() -> dict[str, Any]:
    return schemas.INPUT_SCHEMA


@router.get("/output_schema")
async def output_schema() -> dict[str, Any]:
    return schemas.OUTPUT_SCHEMA


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run: OwnRun) -> RunOut:
    return RunOut.of(run)


@router.get("/{run_id}/stream")
async def join_run_stream(run: OwnRun, res: Res, format: Format = "opengpts") -> StreamingResponse:
    """Watch a run that is still streaming in this process (events replay from the start)."""
    if not res.broker.known(str(run.run_id)):
        raise NotFound("This run has no live stream; read the thread state instead")
    return _stream(res, str(run.run_id), format)


@router.post("/{run_id}/cancel", response_model=RunOut)
async def cancel_run(run: OwnRun, user: CurrentUser, res: Res) -> RunOut:
    await res.executor.cancel(run.run_id)
    current = await res.runs.get_own(user.user_id, run.run_id)
    return RunOut.of(current or run)
