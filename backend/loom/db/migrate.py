"""Numbered SQL migrations, applied in order under a Postgres advisory lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger("loom.db")

# An arbitrary constant shared by every Loom process: only one of them migrates at a time.
_LOCK_KEY = 0x106D_0001


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("loom.db") / "migrations"
    found: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number = int(name.split("_", 1)[0])
        found.append((number, name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"duplicate migration numbers: {numbers}")
    return found


@asynccontextmanager
async def schema_lock(conn: AsyncConnection[dict[str, Any]]) -> AsyncIterator[None]:
    """Hold the schema advisory lock: one process at a time changes the schema.

    Session-level and re-entrant, so :func:`migrate` may run inside it.
    """
    await _acquire(conn)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def _acquire(conn: AsyncConnection[dict[str, Any]]) -> None:
    """Take the lock by polling ``pg_try_advisory_lock``.

    A blocking ``pg_advisory_lock`` keeps a statement open while it waits, and LangGraph's
    ``setup()`` runs ``CREATE INDEX CONCURRENTLY``, which waits for every open transaction:
    the lock holder would wait for the waiter forever (a deadlock Postgres does not detect).
    """
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_LOCK_KEY,))
        row = await cur.fetchone()
        if row and row["ok"]:
            return
        await asyncio.sleep(0.05)


async def prepare_schema(
    conn: AsyncConnection[dict[str, Any]], *more: Callable[[], Awaitable[None]]
) -> list[str]:
    """Migrate, then run further set-up steps (LangGraph's ``setup()``) under the lock.

    LangGraph's own migrations take no lock: two processes starting on a new database would
    race and one would fail with ``DuplicateObject``.
    """
    async with schema_lock(conn):
        applied = await _apply(conn)
        for step in more:
            await step()
    return applied


async def migrate(conn: AsyncConnection[dict[str, Any]]) -> list[str]:
    """Apply the migrations this database lacks, under the schema lock; return their names."""
    async with schema_lock(conn):
        return await _apply(conn)


async def _apply(conn: AsyncConnection[dict[str, Any]]) -> list[str]:
    applied: list[str] = []
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS loom_migration ("
        " version int PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    cur = await conn.execute("SELECT version FROM loom_migration")
    done = {row["version"] for row in await cur.fetchall()}
    for number, name, sql in _migrations():
        if number in done:
            continue
        log.info("applying migration %s", name)
        async with conn.transaction():
            await conn.execute(sql.encode())
            await conn.execute(
                "INSERT INTO loom_migration (version, name) VALUES (%s, %s)", (number, name)
            )
        applied.append(name)
    return applied
