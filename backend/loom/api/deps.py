"""Request dependencies: the pieces a route uses, the caller, and ownership checks.

The app's lifespan puts one :class:`AppState` on ``app.state``; routes never see it whole,
only the few collaborators they declare (``Runs``, ``Threads``, ``Factory``, ...).

Ownership is checked here, once: a route that takes ``OwnThread``, ``OwnAssistant`` or
``OwnRun`` gets an object the caller owns, and any other id (missing, malformed or someone
else's) answers 404 with the same body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Path, Request

from loom import logs
from loom.agents.registry import AgentFactory
from loom.auth import Authenticator, User
from loom.db.types import Pool
from loom.errors import NotFound, ServiceUnavailable, Unauthorized
from loom.limits import RequestLimiter
from loom.retrieval.ingest import IngestService
from loom.runs.search import ThreadSearch
from loom.runs.service import RunService
from loom.runs.state import ThreadStateService
from loom.runs.worker import Worker
from loom.runtime import Runtime
from loom.settings import Settings
from loom.storage.api_keys import ApiKeyRepo
from loom.storage.assistants import Assistant, AssistantRepo
from loom.storage.runs import Run, RunRepo
from loom.storage.threads import Thread, ThreadRepo

# Dependencies are ``async def`` even when they await nothing: FastAPI runs plain ``def``
# dependencies in a thread pool, a thread hop per request for no gain.


@dataclass
class AppState:
    """What the lifespan opened for the web process."""

    runtime: Runtime
    http: httpx.AsyncClient
    auth: Authenticator
    runs: RunService
    state: ThreadStateService
    worker: Worker | None
    requests: RequestLimiter


async def app_state(request: Request) -> AppState:
    state: AppState | None = getattr(request.app.state, "loom", None)
    if state is None:
        raise ServiceUnavailable("Loom is starting")
    return state


State = Annotated[AppState, Depends(app_state)]


async def _settings(state: State) -> Settings:
    return state.runtime.settings


async def _pool(state: State) -> Pool:
    return state.runtime.pool


async def _assistants(state: State) -> AssistantRepo:
    return state.runtime.assistants


async def _threads(state: State) -> ThreadRepo:
    return state.runtime.threads


async def _run_repo(state: State) -> RunRepo:
    return state.runtime.runs


async def _factory(state: State) -> AgentFactory:
    return state.runtime.factory


async def _ingest(state: State) -> IngestService:
    return state.runtime.ingest


async def _api_keys(state: State) -> ApiKeyRepo:
    return state.runtime.api_keys


async def _runs(state: State) -> RunService:
    return state.runs


async def _thread_state(state: State) -> ThreadStateService:
    return state.state


async def _search(state: State) -> ThreadSearch:
    return ThreadSearch(state.runtime.pool, state.runtime.threads, state.state)


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[Pool, Depends(_pool)]
Assistants = Annotated[AssistantRepo, Depends(_assistants)]
Threads = Annotated[ThreadRepo, Depends(_threads)]
RunRecords = Annotated[RunRepo, Depends(_run_repo)]
Factory = Annotated[AgentFactory, Depends(_factory)]
Ingest = Annotated[IngestService, Depends(_ingest)]
Runs = Annotated[RunService, Depends(_runs)]
ApiKeys = Annotated[ApiKeyRepo, Depends(_api_keys)]
ThreadState = Annotated[ThreadStateService, Depends(_thread_state)]
Search = Annotated[ThreadSearch, Depends(_search)]


async def current_user(request: Request, state: State) -> User:
    user = await state.auth.authenticate(request)
    logs.user_id.set(user.user_id)  # for the request's log lines
    await state.requests.hit(user.user_id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def optional_user(request: Request, state: State) -> User | None:
    """The caller, or None for a request without (valid) credentials: for routes anyone may
    read, such as the public assistants."""
    try:
        return await current_user(request, state)
    except Unauthorized:
        return None


MaybeUser = Annotated[User | None, Depends(optional_user)]


def parse_id(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(f"{what} not found") from exc


async def own_thread(
    thread_id: Annotated[str, Path()], user: CurrentUser, threads: Threads
) -> Thread:
    thread = await threads.get_own(user.user_id, parse_id(thread_id, "Thread"))
    if thread is None:
        raise NotFound("Thread not found")
    logs.thread_id.set(str(thread.thread_id))
    return thread


async def own_assistant(
    assistant_id: Annotated[str, Path()], user: CurrentUser, assistants: Assistants
) -> Assistant:
    assistant = await assistants.get_own(user.user_id, parse_id(assistant_id, "Assistant"))
    if assistant is None:
        raise NotFound("Assistant not found")
    return assistant


async def visible_assistant(
    assistant_id: Annotated[str, Path()], user: CurrentUser, assistants: Assistants
) -> Assistant:
    assistant = await assistants.get_visible(user.user_id, parse_id(assistant_id, "Assistant"))
    if assistant is None:
        raise NotFound("Assistant not found")
    return assistant


async def own_run(run_id: Annotated[str, Path()], user: CurrentUser, runs: RunRecords) -> Run:
    run = await runs.get_own(user.user_id, parse_id(run_id, "Run"))
    if run is None:
        raise NotFound("Run not found")
    logs.run_id.set(str(run.run_id))
    logs.thread_id.set(str(run.thread_id))
    return run


OwnThread = Annotated[Thread, Depends(own_thread)]
OwnAssistant = Annotated[Assistant, Depends(own_assistant)]
VisibleAssistant = Annotated[Assistant, Depends(visible_assistant)]
OwnRun = Annotated[Run, Depends(own_run)]
