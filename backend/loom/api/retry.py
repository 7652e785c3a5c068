"""Reads that meet a connection the database dropped are retried once.

A connection cut by a database restart is only found dead when it is used. The pool checks
connections that sat idle before handing them out (:mod:`loom.db.pool`), but one used a moment
before the restart may still reach a request. A ``GET`` or ``HEAD`` that fails with
``psycopg.OperationalError`` before anything was sent is run again, once: the pool has dropped
the dead connection, so the second attempt gets a live one. Writes are not retried here (a
statement may have been applied before the connection died).
"""

from __future__ import annotations

import logging

from psycopg import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("loom.db")

_READS = frozenset({"GET", "HEAD"})


class RetryReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _READS:
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except OperationalError as exc:
            if started:
                raise
            log.info("a read met a dropped database connection (%r); retrying once", exc)
            await self.app(scope, receive, send)
