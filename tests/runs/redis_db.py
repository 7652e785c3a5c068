"""The test Redis: one database number per test module, flushed (only it) before and after.

The server is ``LOOM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``); the database
number in it, if any, is replaced by the module's own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis


def redis_url(db: int) -> str:
    base = urlsplit(os.environ.get("LOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    return urlunsplit((base.scheme, base.netloc, f"/{db}", base.query, ""))


@asynccontextmanager
async def redis_clients(db: int, n: int = 2) -> AsyncIterator[list[redis.Redis]]:
    """``n`` independent clients (connection pools, as separate processes have) on ``db``,
    which is flushed before and after."""
    clients = [redis.Redis.from_url(redis_url(db)) for _ in range(n)]
    try:
        await clients[0].flushdb()
        yield clients
        await clients[0].flushdb()
    finally:
        for client in clients:
            await client.aclose()
