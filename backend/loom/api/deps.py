"""Request dependencies: the app's resources, the caller, and ownership checks.

Ownership is checked here, once: a route that takes ``OwnThread`` or ``OwnAssistant`` gets
an object the caller owns, and any other id (missing, malformed or someone else's) answers
404 with the same body.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from loom.auth import User
from loom.errors import NotFound
from loom.resources import Resources
from loom.storage.assistants import Assistant
from loom.storage.runs import Run
from loom.storage.threads import Thread


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


Res = Annotated[Resources, Depends(get_resources)]


async def current_user(request: Request, res: Res) -> User:
    return await res.auth.authenticate(request)


CurrentUser = Annotated[User, Depends(current_user)]


def _parse_id(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(f"{what} not found") from exc


async def own_thread(thread_id: Annotated[str, Path()], user: CurrentUser, res: Res) -> Thread:
    thread = await res.threads.get_own(user.user_id, _parse_id(thread_id, "Thread"))
    if thread is None:
        raise NotFound("Thread not found")
    return thread


async def own_assistant(
    assistant_id: Annotated[str, Path()], user: CurrentUser, res: Res
) -> Assistant:
    assistant = await res.assistants.get_own(user.user_id, _parse_id(assistant_id, "Assistant"))
    if assistant is None:
        raise NotFound("Assistant not found")
    return assistant


async def visible_assistant(
    assistant_id: Annotated[str, Path()], user: CurrentUser, res: Res
) -> Assistant:
    assistant = await res.assistants.get_visible(user.user_id, _parse_id(assistant_id, "Assistant"))
    if assistant is None:
        raise NotFound("Assistant not found")
    return assistant


async def own_run(run_id: Annotated[str, Path()], user: CurrentUser, res: Res) -> Run:
    run = await res.runs.get_own(user.user_id, _parse_id(run_id, "Run"))
    if run is None:
        raise NotFound("Run not found")
    return run


OwnThread = Annotated[Thread, Depends(own_thread)]
OwnAssistant = Annotated[Assistant, Depends(own_assistant)]
VisibleAssistant = Annotated[Assistant, Depends(visible_assistant)]
OwnRun = Annotated[Run, Depends(own_run)]
