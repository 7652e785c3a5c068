"""The psycopg 3 async connection pool."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from loom.settings import Settings


async def _configure(conn: AsyncConnection[object]) -> None:
    # Vector type adaptation is registered lazily by the retrieval code (the extension may be
    # created by the first migration of a brand-new database, after this hook first runs).
    await conn.set_autocommit(True)


async def open_pool(
    url: str, settings: Settings
) -> AsyncConnectionPool[AsyncConnection[dict[str, object]]]:
    """Open the pool used by Loom's repositories and LangGraph's checkpointer.

    Connections are in autocommit mode with dict rows (what ``AsyncPostgresSaver`` expects);
    multi-statement units of work use ``async with conn.transaction()``.
    """
    pool: AsyncConnectionPool[AsyncConnection[dict[str, object]]] = AsyncConnectionPool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            # Server-side prepared statements for queries run often (the run queue's claim
            # plans in half the time); off for poolers that cannot keep them.
            "prepare_threshold": 5 if settings.db_prepared_statements else None,
        },
        configure=_configure,
        open=False,
        name="loom",
    )
    await pool.open(wait=True, timeout=30)
    return pool
