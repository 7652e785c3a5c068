"""The ``loom`` command: ``loom serve [--no-worker]``, ``loom worker``, ``loom migrate``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from loom.logs import configure_logging, logging_config
from loom.settings import Settings, load_settings

if TYPE_CHECKING:
    from loom.runtime import Runtime

log = logging.getLogger("loom")


def app_factory() -> object:
    """uvicorn's factory for server processes (settings come from the environment)."""
    from loom.app import create_app

    return create_app(load_settings())


async def _prepare(settings: Settings) -> None:
    """Apply migrations (and LangGraph's set-up) before any server process starts."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from loom.db.migrate import prepare_schema
    from loom.db.pool import open_pool

    assert settings.database_url
    pool = await open_pool(settings.database_url, settings.model_copy(update={"db_pool_min": 1}))
    try:
        saver = AsyncPostgresSaver(pool)
        async with pool.connection() as conn:
            applied = await prepare_schema(conn, saver.setup)
        for name in applied:
            log.info("applied migration %s", name)
    finally:
        await pool.close()


def _exit_on_signals() -> None:
    """SIGTERM and SIGINT end the process through a normal interpreter exit, so ``finally``
    blocks run (the embedded Postgres is let go).

    uvicorn handles both signals while it serves, shuts down gracefully, then restores the
    handlers it found and raises the signal again: with the default SIGTERM handler that
    would kill the process on the spot, skipping every clean-up.
    """

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def _with_database(settings: Settings) -> tuple[Settings, object | None]:
    if settings.database_url:
        return settings, None
    from loom.db.embedded import start_embedded

    embedded = start_embedded(settings.data_dir)
    url = embedded.uri()
    # Server processes read their settings from the environment: hand them the same server.
    os.environ["LOOM_DATABASE_URL"] = url
    return settings.model_copy(update={"database_url": url}), embedded


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-*: believed from LOOM_FORWARDED_ALLOW_IPS only (a
    request such a proxy forwards as https has the scheme https, and so gets HSTS)."""
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def serve(settings: Settings) -> int:
    import uvicorn

    # Server processes read their settings from the environment.
    os.environ["LOOM_PROCESSES"] = str(settings.processes)
    os.environ["LOOM_IN_PROCESS_WORKER"] = "true" if settings.in_process_worker else "false"
    settings, embedded = _with_database(settings)
    try:
        asyncio.run(_prepare(settings))
        workers = "a worker in each" if settings.in_process_worker else "no worker (--no-worker)"
        print(
            f"Loom is starting on http://{settings.host}:{settings.port}"
            f" ({settings.processes} server process(es), {workers})",
            flush=True,
        )
        uvicorn.run(
            "loom.__main__:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.processes,
            log_level=settings.log_level,
            log_config=logging_config(settings),
            access_log=False,
            timeout_graceful_shutdown=10,
            **proxy_options(settings),
        )
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    return 0


async def serve_metrics(runtime: Runtime, settings: Settings, stack: AsyncExitStack) -> None:
    """A worker's metrics on ``LOOM_METRICS_PORT`` (it has no HTTP server otherwise), the
    queue's gauges read every few seconds."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(
        settings.metrics_port, addr=settings.host, registry=runtime.metrics.registry
    )

    async def refresh() -> None:
        while True:
            with contextlib.suppress(Exception):
                await runtime.metrics.refresh(runtime.pool)
            await asyncio.sleep(5)

    task = asyncio.create_task(refresh(), name="loom-metrics-refresh")

    def close() -> None:
        task.cancel()
        server.shutdown()
        thread.join(timeout=5)

    stack.callback(close)
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)


async def run_worker(settings: Settings) -> None:
    """Execute queued runs until SIGTERM/SIGINT, then drain (see LOOM_DRAIN_SECONDS)."""
    from loom.runtime import describe, open_runtime

    async with AsyncExitStack() as stack:
        runtime = await open_runtime(settings, stack)
        if settings.metrics_enabled and settings.metrics_port:
            await serve_metrics(runtime, settings, stack)
        worker = runtime.worker()
        await worker.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        print(
            f"Loom worker {worker.owner} is ready: up to {settings.worker_concurrency} runs"
            f" at once ({describe(runtime)})",
            flush=True,
        )
        await stopping.wait()
        print(
            f"Loom worker {worker.owner} is stopping: {worker.running} run(s) in flight get"
            f" {settings.drain_seconds:.0f} s, then go back to the queue",
            flush=True,
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.drain()


def worker_command(settings: Settings) -> int:
    if not settings.redis_url:
        print(
            "loom worker needs LOOM_REDIS_URL: runs executed here are streamed to the API"
            " processes through Redis. One process needs none: `loom serve` runs a worker"
            " itself.",
            file=sys.stderr,
        )
        return 2
    settings, embedded = _with_database(settings)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_worker(settings))
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    return 0


def migrate_command(settings: Settings) -> int:
    settings, embedded = _with_database(settings)
    try:
        asyncio.run(_prepare(settings))
        print("migrations are up to date")
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    return 0


COMMANDS: dict[str, Callable[[Settings], int]] = {
    "serve": serve,
    "worker": worker_command,
    "migrate": migrate_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loom", description="Loom: a runtime for AI agents")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the API and UI server (with a worker)")
    serve_p.add_argument("--host")
    serve_p.add_argument("--port", type=int)
    serve_p.add_argument(
        "--processes", "--workers", dest="processes", type=int, help="server processes"
    )
    serve_p.add_argument(
        "--no-worker",
        dest="in_process_worker",
        action="store_false",
        default=None,
        help="execute no runs here: `loom worker` processes do (needs LOOM_REDIS_URL)",
    )
    worker_p = sub.add_parser("worker", help="execute queued runs (needs LOOM_REDIS_URL)")
    worker_p.add_argument("--concurrency", dest="worker_concurrency", type=int)
    sub.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    keys = ("host", "port", "processes", "in_process_worker", "worker_concurrency")
    overrides = {k: v for k in keys if (v := getattr(args, k, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
            msg = str(err["msg"]).removeprefix("Value error, ")
            print(f"loom: invalid configuration ({where}): {msg}", file=sys.stderr)
        return 2
    configure_logging(settings)
    _exit_on_signals()
    return COMMANDS[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
