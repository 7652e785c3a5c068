"""OpenAI's Assistants API (v2) at ``/v1``: a thin adapter over Loom's core.

An Assistants assistant, thread and run are a Loom assistant, thread and run; a thread's
messages are its LangGraph messages. What OpenAI's shapes carry beyond Loom's rows lives in
this package's tables (migration 0012). Clients authenticate with a Loom API key. See the
README ("OpenAI Assistants API") for what is covered and what is left out.

``install(app, settings)`` mounts the routes and the ``/v1`` error shape.
"""

from __future__ import annotations

from fastapi import FastAPI

from loom.settings import Settings

from . import assistants, errors, files, runs, threads


def install(app: FastAPI, settings: Settings) -> None:
    # /threads/runs (create thread and run) before /threads/{thread_id}.
    for router in (assistants.router, runs.router, threads.router):
        app.include_router(router, max_body_size=settings.max_body_bytes)
    for router in (files.files_router, files.stores_router):
        app.include_router(router, max_body_size=settings.ingest_max_request_bytes)
    errors.install(app)
