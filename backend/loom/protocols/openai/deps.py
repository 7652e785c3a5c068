"""Dependencies of the ``/v1`` routes: the caller, the core services, ownership checks.

``/v1`` clients authenticate with an API key (``Authorization: Bearer loom_sk_...``), or in the
JWT/OIDC modes with a token; never with the development cookie. Every id in a path is checked
here, once: an id that is malformed, missing or someone else's answers the same 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from loom.agents.registry import AgentFactory
from loom.api.deps import State
from loom.auth import User
from loom.retrieval.ingest import IngestService
from loom.runs.service import RunService
from loom.runs.state import ThreadStateService
from loom.settings import Settings
from loom.storage.assistants import Assistant, AssistantRepo
from loom.storage.runs import RunRepo
from loom.storage.threads import Thread, ThreadRepo

from . import ids
from .store import FileRecord, OpenAIStore, RunRecord, VectorStoreRecord


@dataclass(frozen=True)
class Core:
    """The core services the Assistants protocol calls."""

    settings: Settings
    assistants: AssistantRepo
    threads: ThreadRepo
    run_rows: RunRepo
    runs: RunService
    state: ThreadStateService
    factory: AgentFactory
    ingest: IngestService
    store: OpenAIStore


async def _core(state: State) -> Core:
    runtime = state.runtime
    return Core(
        settings=runtime.settings,
        assistants=runtime.assistants,
        threads=runtime.threads,
        run_rows=runtime.runs,
        runs=state.runs,
        state=state.state,
        factory=runtime.factory,
        ingest=runtime.ingest,
        store=OpenAIStore(runtime.pool),
    )


CoreDep = Annotated[Core, Depends(_core)]


async def client_user(request: Request, state: State) -> User:
    user = await state.auth.authenticate_client(request)
    await state.requests.hit(user.user_id)
    return user


ClientUser = Annotated[User, Depends(client_user)]


async def own_assistant(
    assistant_id: Annotated[str, Path()], user: ClientUser, core: CoreDep
) -> Assistant:
    found = await core.assistants.get_own(user.user_id, ids.parse("assistant", assistant_id))
    if found is None:
        raise ids.not_found("assistant", assistant_id)
    return found


async def visible_assistant(
    assistant_id: Annotated[str, Path()], user: ClientUser, core: CoreDep
) -> Assistant:
    found = await core.assistants.get_visible(user.user_id, ids.parse("assistant", assistant_id))
    if found is None:
        raise ids.not_found("assistant", assistant_id)
    return found


async def own_thread(thread_id: Annotated[str, Path()], user: ClientUser, core: CoreDep) -> Thread:
    found = await core.threads.get_own(user.user_id, ids.parse("thread", thread_id))
    if found is None:
        raise ids.not_found("thread", thread_id)
    return found


OwnThread = Annotated[Thread, Depends(own_thread)]


async def own_run(
    run_id: Annotated[str, Path()], thread: OwnThread, user: ClientUser, core: CoreDep
) -> RunRecord:
    found = await core.store.run(user.user_id, thread.thread_id, ids.parse("run", run_id))
    if found is None:
        raise ids.not_found("run", run_id)
    return found


async def own_file(file_id: Annotated[str, Path()], user: ClientUser, core: CoreDep) -> FileRecord:
    found = await core.store.file(user.user_id, ids.parse("file", file_id))
    if found is None:
        raise ids.not_found("file", file_id)
    return found


async def own_store(
    vector_store_id: Annotated[str, Path()], user: ClientUser, core: CoreDep
) -> VectorStoreRecord:
    found = await core.store.store(user.user_id, ids.parse("vector_store", vector_store_id))
    if found is None:
        raise ids.not_found("vector_store", vector_store_id)
    return found


OwnAssistant = Annotated[Assistant, Depends(own_assistant)]
VisibleAssistant = Annotated[Assistant, Depends(visible_assistant)]
OwnRun = Annotated[RunRecord, Depends(own_run)]
OwnFile = Annotated[FileRecord, Depends(own_file)]
OwnStore = Annotated[VectorStoreRecord, Depends(own_store)]
