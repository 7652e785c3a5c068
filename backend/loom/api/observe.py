"""Every request gets an id (its ``X-Request-ID``, or a new one, echoed in the response) that
log lines written while serving it carry (:mod:`loom.logs`), a span when tracing is on
(:mod:`loom.tracing`), and a debug line on ``loom.access`` when it is done."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loom import logs

log = logging.getLogger("loom.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _VALID_ID.match(sent) else uuid.uuid4().hex
        logs.request_id.set(request_id)
        for var in (logs.user_id, logs.thread_id, logs.run_id):
            var.set(None)
        header = (b"x-request-id", request_id.encode("latin-1"))
        status = 0

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        state = getattr(scope.get("app"), "state", None)
        loom = getattr(state, "loom", None)
        tracing = loom.runtime.tracing if loom is not None else None
        started = time.perf_counter()
        method, path = scope.get("method", ""), scope.get("path", "")
        if tracing is None or not tracing.enabled:
            await self.app(scope, receive, with_id)
        else:
            with tracing.span(
                f"{method} {path}",
                **{"http.request.method": method, "url.path": path, "loom.request_id": request_id},
            ) as span:
                await self.app(scope, receive, with_id)
                span.set_attribute("http.response.status_code", status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms",
                method,
                path,
                status,
                1000 * (time.perf_counter() - started),
            )
