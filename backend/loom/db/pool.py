"""The psycopg 3 async connection pool.

Connections survive a database restart: a connection handed out by the pool is checked
first (an empty query) when it has been idle for ``LOOM_DB_CHECK_AFTER_IDLE_SECONDS`` or more,
so connections cut while they sat in the pool are replaced, not given to a request (a
connection in use during a restart fails, and the pool drops it when it comes back).
Connections idle for ``LOOM_DB_POOL_MAX_IDLE_SECONDS`` are closed, and every connection is
replaced after ``LOOM_DB_POOL_MAX_LIFETIME_SECONDS``. A connection used a moment ago skips
the check, which keeps a busy pool's checkouts free of an extra round trip; a read that still
meets a dead connection is retried once (:mod:`loom.api.retry`).
"""

from __future__ import annotations

import time
import weakref

import orjson
from psycopg import AsyncConnection, OperationalError
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from loom.settings import Settings


async def _configure(conn: AsyncConnection[object]) -> None:
    # Vector type adaptation is registered lazily by the retrieval code (the extension may be
    # created by the first migration of a brand-new database, after this hook first runs).
    await conn.set_autocommit(True)
    # jsonb keeps numbers as numerics and writes a float such as 1.2e21 back without an
    # exponent: orjson reads an integer beyond 64 bits as a float again, as the request
    # validation left it (loom.validation.storable), so streams and checkpoints can carry it.
    set_json_loads(orjson.loads, conn)


class _Checks:
    """Checks a connection on checkout unless it was returned to the pool a moment ago."""

    def __init__(self, idle_seconds: float) -> None:
        self._idle = idle_seconds
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[object], float] = (
            weakref.WeakKeyDictionary()
        )

    async def reset(self, conn: AsyncConnection[object]) -> None:
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[object]) -> None:
        if conn.broken or conn.closed:
            raise OperationalError("the connection is closed")
        returned = self._returned.get(conn)
        if returned is not None and time.monotonic() - returned < self._idle:
            return
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    url: str, settings: Settings
) -> AsyncConnectionPool[AsyncConnection[dict[str, object]]]:
    """Open the pool used by Loom's repositories and LangGraph's checkpointer.

    Connections are in autocommit mode with dict rows (what ``AsyncPostgresSaver`` expects);
    multi-statement units of work use ``async with conn.transaction()``.
    """
    checks = _Checks(settings.db_check_after_idle_seconds)
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
        check=checks.check,
        reset=checks.reset,
        max_idle=settings.db_pool_max_idle_seconds,
        max_lifetime=settings.db_pool_max_lifetime_seconds,
        timeout=settings.db_pool_timeout_seconds,
        open=False,
        name="loom",
    )
    await pool.open(wait=True, timeout=30)
    return pool
