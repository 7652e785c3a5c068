"""``/threads``: threads, their state and their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from loom.api.deps import (
    Assistants,
    CurrentUser,
    OwnThread,
    RunRecords,
    Search,
    Threads,
    ThreadState,
)
from loom.api.messages import MessageIn, MessagesIn, wire_input
from loom.api.openapi import errors
from loom.api.paging import PageQuery, paged
from loom.api.routing import SlashRouter
from loom.api.runs import RunOut
from loom.errors import InvalidInput, NotFound
from loom.storage.runs import RunStatus
from loom.storage.threads import Thread
from loom.validation import JSON_NUMBER, NO_NUL, storable

router = SlashRouter(prefix="/threads", tags=["threads"])

MAX_HISTORY = 200


class ThreadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=256)
    assistant_id: uuid.UUID
    metadata: dict[str, Any] | None = None

    @field_validator("name", "metadata")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")


class ThreadOut(BaseModel):
    thread_id: str
    assistant_id: str | None
    name: str
    user_id: str
    updated_at: datetime
    metadata: dict[str, Any]

    @classmethod
    def of(cls, t: Thread) -> ThreadOut:
        return cls(
            thread_id=str(t.thread_id),
            assistant_id=str(t.assistant_id) if t.assistant_id else None,
            name=t.name,
            user_id=t.user_id,
            updated_at=t.updated_at,
            metadata=t.metadata,
        )


class BranchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


class StateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    values: list[MessageIn] | MessagesIn = Field(
        description='Messages to add (or replace, by id): a list or {"messages": [...]}'
    )

    # The same input rules as every other route that stores messages (POST /runs).
    _storable = field_validator("values", mode="before")(lambda value: storable(value, "the value"))


async def _check_assistant(assistants: Assistants, user_id: str, assistant_id: uuid.UUID) -> None:
    # Own or public assistants only; anything else is "not found", whoever owns it.
    if await assistants.get_visible(user_id, assistant_id) is None:
        raise NotFound("Assistant not found")


@router.post("", response_model=ThreadOut)
async def create_thread(
    body: ThreadIn, user: CurrentUser, threads: Threads, assistants: Assistants
) -> ThreadOut:
    await _check_assistant(assistants, user.user_id, body.assistant_id)
    thread = await threads.create(user.user_id, body.name, body.assistant_id, body.metadata)
    return ThreadOut.of(thread)


SearchQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=NO_NUL,
        description="Only threads whose title or messages contain these words",
    ),
]


@router.get("", response_model=list[ThreadOut])
async def list_threads(
    request: Request,
    response: Response,
    page: PageQuery,
    user: CurrentUser,
    search: Search,
    q: SearchQuery = None,
) -> list[ThreadOut]:
    """The caller's threads, most recently updated first (paged: ``Link`` header)."""
    found = await search.threads(user.user_id, q or "", page)
    return paged(request, response, found, ThreadOut.of)


@router.get("/{thread_id}", response_model=ThreadOut)
async def get_thread(thread: OwnThread) -> ThreadOut:
    return ThreadOut.of(thread)


@router.put("/{thread_id}", response_model=ThreadOut)
async def update_thread(
    body: ThreadIn, thread: OwnThread, user: CurrentUser, threads: Threads, assistants: Assistants
) -> ThreadOut:
    await _check_assistant(assistants, user.user_id, body.assistant_id)
    updated = await threads.update(
        user.user_id, thread.thread_id, body.name, body.assistant_id, body.metadata
    )
    if updated is None:
        raise NotFound("Thread not found")
    return ThreadOut.of(updated)


@router.delete("/{thread_id}")
async def delete_thread(thread: OwnThread, user: CurrentUser, state: ThreadState) -> dict[str, str]:
    await state.delete_thread(user.user_id, thread)
    return {"status": "ok"}


@router.get("/{thread_id}/state")
async def get_thread_state(thread: OwnThread, state: ThreadState) -> dict[str, Any]:
    return await state.get_state(thread)


@router.post("/{thread_id}/state", responses=errors(409))
async def update_thread_state(
    body: StateIn, thread: OwnThread, state: ThreadState
) -> dict[str, Any]:
    return await state.update_state(thread, wire_input(body.values))


HistoryLimit = Annotated[int, Field(ge=1, le=MAX_HISTORY), JSON_NUMBER]


class HistoryIn(BaseModel):
    """``POST /threads/{id}/history``: the same choices as the GET's query, in a body."""

    model_config = ConfigDict(extra="ignore")

    limit: HistoryLimit = 20
    before: str | dict[str, Any] | None = Field(
        default=None,
        description="A checkpoint id, or a config whose configurable.checkpoint_id is one",
    )
    values: StrictBool = True
    metadata: dict[str, Any] | None = Field(
        default=None, description="Only checkpoints whose metadata contains these keys/values"
    )

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")

    def before_id(self) -> str | None:
        before = self.before
        if isinstance(before, dict):
            before = (before.get("configurable") or {}).get("checkpoint_id")
        if before is not None and (not isinstance(before, str) or len(before) > 64):
            raise InvalidInput("before must be a checkpoint id")
        return before or None


@router.get("/{thread_id}/history")
async def get_thread_history(
    thread: OwnThread,
    state: ThreadState,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 20,
    before: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    values: Annotated[
        bool,
        Query(description="false: checkpoint ids, parents, metadata and times only (fast)"),
    ] = True,
) -> list[dict[str, Any]]:
    """The thread's checkpoints, newest first; page with ``before`` (the last one's id)."""
    return await state.history(thread, limit, before, values=values)


@router.post("/{thread_id}/history")
async def post_thread_history(
    body: HistoryIn, thread: OwnThread, state: ThreadState
) -> list[dict[str, Any]]:
    """As ``GET``, with a metadata filter: ``{"limit", "before", "values", "metadata"}``."""
    return await state.history(
        thread, body.limit, body.before_id(), values=body.values, metadata=body.metadata
    )


@router.get("/{thread_id}/branches")
async def get_thread_branches(thread: OwnThread, state: ThreadState) -> dict[str, Any]:
    """Per message of the current branch: ``created_at``, ``fork_from`` (the checkpoint
    before it) and, where the thread has other branches, ``siblings``."""
    return await state.branches(thread)


@router.post("/{thread_id}/branches", responses=errors(409))
async def switch_thread_branch(
    body: BranchIn, thread: OwnThread, state: ThreadState
) -> dict[str, Any]:
    """Make the branch ending at ``checkpoint_id`` the thread's current one; its state."""
    return await state.switch_branch(thread, body.checkpoint_id)


@router.get("/{thread_id}/runs", response_model=list[RunOut])
async def list_thread_runs(
    request: Request,
    response: Response,
    page: PageQuery,
    thread: OwnThread,
    runs: RunRecords,
    status: Annotated[
        list[RunStatus] | None,
        Query(description="Only runs with these statuses (repeat it): pending, running, ..."),
    ] = None,
) -> list[RunOut]:
    """The thread's runs, newest first (paged: ``Link`` header);
    ``?status=pending&status=running`` finds the one in progress (to follow with
    ``GET /runs/{id}/stream`` or stop)."""
    statuses = [str(s) for s in status] if status else None
    found = await runs.page_for_thread(thread.thread_id, statuses, page)
    return paged(request, response, found, RunOut.of)
