"""A read that meets a connection the database dropped is run again once; a write is not.

The app here is a bare Starlette app whose handlers raise ``psycopg.OperationalError`` the way
a dropped connection does (``tests/runs/test_db_faults.py`` shows the whole path on a real
database behind a fault proxy).
"""

from __future__ import annotations

import httpx
import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loom.api.retry import RetryReads


def _app(failures: int) -> tuple[Starlette, list[str]]:
    calls: list[str] = []

    async def handler(request: Request) -> Response:
        calls.append(request.method)
        if len(calls) <= failures:
            raise psycopg.OperationalError("consuming input failed: server closed the connection")
        return JSONResponse({"ok": True})

    # Mounted as Loom mounts it (``app.add_middleware``): inside the error middleware that
    # turns an exception into a 500.
    app = Starlette(
        routes=[Route("/x", handler, methods=["GET", "POST"])],
        middleware=[Middleware(RetryReads)],
    )
    return app, calls


async def test_a_read_is_retried_once() -> None:
    app, calls = _app(failures=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/x")
    assert (r.status_code, r.json(), calls) == (200, {"ok": True}, ["GET", "GET"])


async def test_only_once() -> None:
    app, calls = _app(failures=2)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.get("/x")
    assert r.status_code == 500
    assert calls == ["GET", "GET"]


async def test_a_write_is_not_retried() -> None:
    app, calls = _app(failures=1)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.post("/x")
    assert r.status_code == 500
    assert calls == ["POST"]
