"""The FastAPI application: routers, error handlers, and the lifespan that opens resources.

``create_app(settings)`` builds an app; nothing happens at import time. The lifespan starts
the embedded Postgres when no database URL is configured, opens the pool, applies migrations,
sets up LangGraph's checkpoint tables and hands everything to requests as one
:class:`~loom.resources.Resources`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loom.agents.registry import default_factory
from loom.api import assistants, ingest, runs, threads
from loom.api.deps import CurrentUser, Res
from loom.auth import make_authenticator
from loom.db.embedded import start_embedded
from loom.db.migrate import prepare_schema
from loom.db.pool import open_pool
from loom.errors import install_error_handlers
from loom.resources import Resources
from loom.retrieval import open_retrieval
from loom.runs.broker import LocalBroker
from loom.runs.executor import LocalExecutor
from loom.settings import Settings
from loom.storage.assistants import AssistantRepo
from loom.storage.runs import RunRepo
from loom.storage.threads import ThreadRepo

log = logging.getLogger("loom")


class BodyLimit:
    """413 for request bodies over the limit, by Content-Length or while streaming.

    ``exempt_paths`` enforce their own limit (``/ingest``: ``LOOM_INGEST_MAX_REQUEST_BYTES``).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, exempt_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
                # The server never reads past Content-Length: nothing more to watch.
                await self.app(scope, receive, send)
                return
        seen = 0
        started = False
        too_large = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, rejected
            if too_large and (rejected or not started):
                # FastAPI turns any error while reading the body into its own 400; whatever
                # the app answers to a cut-off body, the client gets the 413 instead.
                if message["type"] == "http.response.start":
                    started = rejected = True
                    await self._reject(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        limit = self.max_bytes
        response = JSONResponse(
            {"detail": f"Request body too large (limit {limit} bytes)"}, status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


async def open_resources(settings: Settings, stack: AsyncExitStack) -> Resources:
    """Open everything a Loom process needs; ``stack`` closes it in reverse order."""
    url = settings.database_url
    if url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        stack.callback(embedded.stop)
        url = embedded.uri()
    pool = await open_pool(url, settings)
    stack.push_async_callback(pool.close)
    checkpointer = AsyncPostgresSaver(pool)
    async with pool.connection() as conn:
        await prepare_schema(conn, checkpointer.setup)
    http = httpx.AsyncClient(timeout=30)
    stack.push_async_callback(http.aclose)

    run_repo = RunRepo(pool)
    thread_repo = ThreadRepo(pool)
    broker = LocalBroker()
    retriever, ingest_service = await open_retrieval(settings, pool, stack)
    factory = default_factory(settings, checkpointer, retriever=retriever)
    executor = LocalExecutor(factory, run_repo, thread_repo, broker)
    stack.push_async_callback(executor.shutdown)
    return Resources(
        settings=settings,
        pool=pool,
        http=http,
        auth=make_authenticator(settings, http),
        assistants=AssistantRepo(pool),
        threads=thread_repo,
        runs=run_repo,
        factory=factory,
        broker=broker,
        executor=executor,
        checkpointer=checkpointer,
        ingest=ingest_service,
    )


def _mount_frontend(app: FastAPI, dist: Path) -> None:
    """Serve the built UI at ``/``: hashed assets, top-level files, index.html for the rest."""
    api_prefixes = (
        "assistants",
        "threads",
        "runs",
        "ingest",
        "health",
        "auth",
        "me",
        "docs",
        "openapi",
    )
    if (dist / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")
    top_level = {p.name: p for p in dist.iterdir() if p.is_file()} if dist.is_dir() else {}
    index = top_level.get("index.html")

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(path: str) -> Response:
        if path.split("/", 1)[0] in api_prefixes:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if path in top_level and path != "index.html":
            return FileResponse(top_level[path])
        if index is None:
            message = "The UI is not built: run `make start` (or npm run build in frontend/)"
            return JSONResponse({"detail": message}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings, *, resources: Resources | None = None) -> FastAPI:
    """Build the app. ``resources`` lets a test share resources it opened itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if resources is not None:
            app.state.resources = resources
            yield {}
            return
        async with AsyncExitStack() as stack:
            app.state.resources = await open_resources(settings, stack)
            log.info("Loom is ready (auth: %s)", settings.auth)
            yield {}

    app = FastAPI(
        title="Loom",
        version="0.1.0",
        description="Self-hosted runtime for stateful AI agents (OpenGPTs-compatible API).",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, exempt_paths=frozenset({"/ingest"})
    )

    app.include_router(assistants.router)
    app.include_router(threads.router)
    app.include_router(runs.router)
    app.include_router(ingest.router)

    @app.get("/health", tags=["health"])
    async def health(res: Res) -> JSONResponse:
        try:
            async with res.pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get("/me", tags=["auth"])
    async def me(user: CurrentUser) -> dict[str, str]:
        """Who the credentials belong to (401 when they are missing or bad)."""
        return {"user_id": user.user_id}

    @app.get("/auth/mode", tags=["auth"])
    async def auth_mode() -> dict[str, str]:
        return {"mode": settings.auth}

    _mount_frontend(app, settings.frontend_dist)
    return app
