"""Schema set-up: migrations and LangGraph's tables, safe when processes start together."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import psycopg

from loom.runtime import open_runtime
from tests.conftest import make_settings


async def test_processes_starting_together_on_a_new_database(database_url: str) -> None:
    """Several server processes (``LOOM_PROCESSES``) open a brand-new database at once.

    LangGraph's ``setup()`` takes no lock of its own; without Loom's schema lock around it one
    of them fails with ``DuplicateObject`` and the server exits.
    """
    settings = make_settings(database_url)
    async with AsyncExitStack() as one, AsyncExitStack() as two, AsyncExitStack() as three:
        opened = await asyncio.gather(
            open_runtime(settings, one),
            open_runtime(settings, two),
            open_runtime(settings, three),
        )
        assert len(opened) == 3
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM loom_migration ORDER BY 1")]
        assert versions == sorted(set(versions)) and versions[0] == 1
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {"assistant", "thread", "run", "document", "checkpoints", "checkpoint_writes"} <= tables


async def test_migrations_are_applied_once(database_url: str) -> None:
    settings = make_settings(database_url)
    for _ in range(2):
        async with AsyncExitStack() as stack:
            await open_runtime(settings, stack)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM loom_migration GROUP BY 1").fetchall()
    assert rows and all(count == 1 for _, count in rows)
