"""OpenAI's Assistants API (v2) at ``/v1``: a thin adapter over Loom's core.

An Assistants assistant, thread and run are a Loom assistant, thread and run; a thread's
messages are its LangGraph messages. What OpenAI's shapes carry beyond Loom's rows lives in
this package's tables (migration 0012). Clients authenticate with a Loom API key. See the
README ("OpenAI Assistants API") for what is covered and what is left out.

``install(app, settings)`` mounts the routes and the ``/v1`` error shape.
"""

from __future__ import annotations

from typing import NoReturn

from fastapi import APIRouter, FastAPI, Request

from loom.api.errors import method_not_allowed
from loom.errors import NotFound
from loom.settings import Settings

from . import assistants, errors, files, runs, threads

_unknown = APIRouter()


@_unknown.api_route(
    "/v1/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_model=None,
)
async def unknown_path(path: str, request: Request) -> NoReturn:
    raise method_not_allowed(request) or NotFound(f"Unknown request URL: /v1/{path[:200]}")


def install(app: FastAPI, settings: Settings) -> None:
    # /threads/runs (create thread and run) before /threads/{thread_id}.
    for router in (assistants.router, runs.router, threads.router):
        app.include_router(router, max_body_size=settings.max_body_bytes)
    for router in (files.files_router, files.stores_router):
        app.include_router(router, max_body_size=settings.ingest_max_request_bytes)
    app.include_router(_unknown)
    errors.install(app)
