"""The FastAPI application: routers, error handlers, and the lifespan.

``create_app(settings)`` builds an app; nothing happens at import time. The lifespan opens
the :class:`~loom.runtime.Runtime` (database, migrations, queue, broker, ...), starts this
process's worker unless ``LOOM_IN_PROCESS_WORKER`` is off (``loom serve --no-worker``), and
builds the services the routers use. On shutdown the worker drains: in-flight runs get
``LOOM_DRAIN_SECONDS`` to finish, the rest go back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from loom.api import api_keys, assistants, files, ingest, runs, threads
from loom.api.deps import AppState, CurrentUser, PoolDep, State, current_user
from loom.api.errors import install_error_handlers, method_not_allowed
from loom.api.headers import SecurityHeaders
from loom.api.observe import RequestContext
from loom.api.openapi import install_openapi
from loom.api.retry import RetryReads
from loom.auth import make_authenticator
from loom.limits import RequestLimiter, StreamSlots
from loom.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from loom.protocols import chatkit
from loom.protocols import openai as openai_protocol
from loom.protocols.chatkit import schema as chatkit_schema
from loom.protocols.openai.deps import client_user
from loom.protocols.openai.errors import ErrorResponse as OpenAIError
from loom.runs.service import RunService
from loom.runs.state import ThreadStateService
from loom.runs.worker import Worker
from loom.runtime import Runtime, describe, open_runtime
from loom.settings import Settings

log = logging.getLogger("loom")


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
        "api-keys",
        "v1",
        "chatkit",
        "metrics",
    )
    if (dist / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")
    top_level = {p.name: p for p in dist.iterdir() if p.is_file()} if dist.is_dir() else {}
    index = top_level.get("index.html")

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(path: str, request: Request) -> Response:
        if path.split("/", 1)[0] in api_prefixes:
            raise method_not_allowed(request) or StarletteHTTPException(404, "Not Found")
        if path in top_level and path != "index.html":
            return FileResponse(top_level[path])
        if index is None:
            message = "The UI is not built: run `make start` (or npm run build in frontend/)"
            return JSONResponse({"detail": message}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


async def open_app_state(
    settings: Settings, stack: AsyncExitStack, runtime: Runtime | None = None
) -> AppState:
    """Open the runtime (unless given), start this process's worker, build the services."""
    if runtime is None:
        runtime = await open_runtime(settings, stack)
    http = httpx.AsyncClient(timeout=30)
    stack.push_async_callback(http.aclose)
    worker: Worker | None = None
    if settings.in_process_worker:
        worker = runtime.worker()
        await worker.start()
        stack.push_async_callback(worker.drain)
    run_service = RunService(
        runs=runtime.runs,
        threads=runtime.threads,
        assistants=runtime.assistants,
        factory=runtime.factory,
        broker=runtime.broker,
        wakeup=runtime.wakeup,
        worker=worker,
        default_recursion_limit=settings.recursion_limit,
        lease_seconds=settings.lease_seconds,
        metrics=runtime.metrics,
        max_active_runs=settings.max_active_runs,
        streams=StreamSlots(
            settings.max_open_streams,
            # renewed at least every heartbeat: a slot outlives a few missed ones
            lease_seconds=max(60.0, 4 * settings.stream_heartbeat_seconds),
            client=runtime.redis,
            prefix=settings.redis_prefix,
        ),
    )
    state_service = ThreadStateService(
        threads=runtime.threads,
        assistants=runtime.assistants,
        runs=runtime.runs,
        run_service=run_service,
        factory=runtime.factory,
        checkpointer=runtime.checkpointer,
    )
    return AppState(
        runtime=runtime,
        http=http,
        auth=make_authenticator(settings, http, runtime.api_keys),
        runs=run_service,
        state=state_service,
        worker=worker,
        requests=RequestLimiter(
            settings.rate_limit_per_minute, runtime.redis, prefix=settings.redis_prefix
        ),
    )


def _on_sigterm(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` first when the server gets SIGTERM/SIGINT (then the server's own
    handler); returns an undo. A no-op off the main thread (servers run by tests)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        before = signal.getsignal(sig)
        if not callable(before):
            continue
        previous[sig] = before

        def handler(signum: int, frame: Any, before: Any = before) -> None:
            callback()
            before(signum, frame)

        signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            with contextlib.suppress(ValueError):
                signal.signal(sig, before)

    return undo


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. ``runtime`` lets a test share a runtime it opened itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            state = await open_app_state(settings, stack, runtime)
            app.state.loom = state
            if state.worker is not None:
                stack.callback(_on_sigterm(state.worker.stop_claiming))
            log.info(
                "Loom is ready (auth: %s, worker: %s, %s)",
                settings.auth,
                "in process" if state.worker else "none (--no-worker)",
                describe(state.runtime),
            )
            yield {}

    app = FastAPI(
        title="Loom",
        version="0.1.0",
        description="Self-hosted runtime for stateful AI agents (OpenGPTs-compatible API).",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RetryReads)
    docs = (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(
        SecurityHeaders,
        hsts_seconds=settings.hsts_seconds,
        docs_paths=[path for path in docs if path],
    )
    app.add_middleware(RequestContext)  # outermost: ids and spans cover the whole request

    # Request bodies are limited per router (FastAPI's max_body_size), inside the middleware
    # that keeps the 413's body in Loom's error shape.
    for router in (assistants.router, threads.router, files.router, runs.router, api_keys.router):
        app.include_router(router, max_body_size=settings.max_body_bytes)
    # Uploads have their own, larger limit (LOOM_INGEST_MAX_REQUEST_BYTES).
    app.include_router(ingest.router, max_body_size=settings.ingest_max_request_bytes)
    app.include_router(chatkit.router, max_body_size=settings.max_body_bytes)
    app.include_router(chatkit.uploads, max_body_size=settings.ingest_max_request_bytes)

    @app.get("/health", tags=["health"])
    async def health(pool: PoolDep) -> JSONResponse:
        try:
            async with pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    if settings.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        async def metrics(state: State) -> Response:
            """This process's metrics, in Prometheus's text format."""
            runtime = state.runtime
            try:
                await runtime.metrics.refresh(runtime.pool)
            except Exception as exc:  # the rest is still worth answering
                log.warning("could not read the queue for /metrics (%r)", exc)
            return Response(runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/me", tags=["auth"])
    async def me(user: CurrentUser) -> dict[str, str]:
        """Who the credentials belong to (401 when they are missing or bad)."""
        return {"user_id": user.user_id}

    @app.get("/auth/mode", tags=["auth"])
    async def auth_mode() -> dict[str, str]:
        return {"mode": settings.auth}

    openai_protocol.install(app, settings)
    _mount_frontend(app, settings.frontend_dist)
    install_openapi(
        app,
        {current_user, client_user},
        openai_error=OpenAIError,
        components=chatkit_schema.components(settings),
    )
    return app
