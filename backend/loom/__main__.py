"""The ``loom`` command: ``loom serve``, ``loom migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from loom.settings import Settings, load_settings

log = logging.getLogger("loom")


def app_factory() -> object:
    """uvicorn's factory for worker processes (settings come from the environment)."""
    from loom.app import create_app

    return create_app(load_settings())


async def _prepare(settings: Settings) -> None:
    """Migrate, and fail runs a previous server left active (nothing can finish them now)."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from loom.db.migrate import prepare_schema
    from loom.db.pool import open_pool
    from loom.storage.runs import RunRepo

    assert settings.database_url
    pool = await open_pool(settings.database_url, settings.model_copy(update={"db_pool_min": 1}))
    try:
        saver = AsyncPostgresSaver(pool)
        async with pool.connection() as conn:
            applied = await prepare_schema(conn, saver.setup)
        for name in applied:
            log.info("applied migration %s", name)
        stale = await RunRepo(pool).fail_stale("The server stopped before the run finished")
        if stale:
            log.warning("marked %d unfinished run(s) from a previous server as failed", stale)
    finally:
        await pool.close()


def _with_database(settings: Settings) -> tuple[Settings, object | None]:
    if settings.database_url:
        return settings, None
    from loom.db.embedded import start_embedded

    embedded = start_embedded(settings.data_dir)
    url = embedded.uri()
    # Worker processes read their settings from the environment: hand them the same server.
    os.environ["LOOM_DATABASE_URL"] = url
    return settings.model_copy(update={"database_url": url}), embedded


def serve(settings: Settings) -> None:
    import uvicorn

    settings, embedded = _with_database(settings)
    try:
        asyncio.run(_prepare(settings))
        print(f"Loom is starting on http://{settings.host}:{settings.port}", flush=True)
        uvicorn.run(
            "loom.__main__:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


def migrate_command(settings: Settings) -> None:
    settings, embedded = _with_database(settings)
    try:
        asyncio.run(_prepare(settings))
        print("migrations are up to date")
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


COMMANDS = {"serve": serve, "migrate": migrate_command}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loom", description="Loom: a runtime for AI agents")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the API and UI server")
    serve_p.add_argument("--host")
    serve_p.add_argument("--port", type=int)
    serve_p.add_argument("--workers", type=int, help="server processes (default 1)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    overrides = {
        k: v for k in ("host", "port", "workers") if (v := getattr(args, k, None)) is not None
    }
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
            print(f"loom: invalid configuration ({where}): {err['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    COMMANDS[args.command](settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
