"""The native API's error mapping: Loom error codes to HTTP statuses and ``{"detail": ...}``.

This is the one place the native (OpenGPTs-compatible) protocol turns core errors into HTTP
responses and into the ``status_code`` of SSE ``error`` events. Other protocols map the same
codes to their own shapes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loom.errors import INTERNAL_MESSAGE, LoomError, RateLimited, Unauthorized, public_error

log = logging.getLogger("loom.errors")

STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "thread_busy": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "invalid_input": 422,
    "rate_limited": 429,
    "cancelled": 499,  # nginx's "client closed request": the run was stopped on purpose
    "upstream_error": 502,
    "unavailable": 503,
    "upstream_timeout": 504,
    "run_lost": 500,
    "internal": 500,
}


def http_status(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def error_headers(exc: LoomError) -> dict[str, str] | None:
    """The headers an error's answer carries: ``WWW-Authenticate`` on a 401, ``Retry-After``
    (whole seconds) on a 429."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    return None


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=status, headers=headers)


def _loom_detail(exc: LoomError, status: int) -> Any:
    # A 422 has one body shape wherever it comes from: a list of {loc, msg, type}.
    if status == 422 and not isinstance(exc.detail, list):
        return [{"loc": list(exc.loc), "msg": str(exc.detail), "type": exc.code}]
    return exc.detail


def allowed_methods(request: Request) -> list[str]:
    """The methods the routes at this request's path answer (a 405's ``Allow``): those of the
    most specific templates that match (``/assistants/public`` before ``/assistants/{id}``);
    catch-all routes (``{path:path}``) do not count."""
    by_params: dict[int, set[str]] = {}
    path = request.url.path
    for route in iter_route_contexts(request.app.routes):
        template = route.path_format
        if not template or ":path}" in str(route.path) or not route.methods:
            continue
        if compile_path(template)[0].match(path):
            by_params.setdefault(template.count("{"), set()).update(route.methods)
    return sorted(by_params[min(by_params)]) if by_params else []


def method_not_allowed(request: Request) -> StarletteHTTPException | None:
    """405 with ``Allow`` when other methods answer at this path, else ``None``."""
    allowed = allowed_methods(request)
    if not allowed:
        return None
    return StarletteHTTPException(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Pydantic's error list minus the echoed input and the internal URLs.
    out: list[dict[str, Any]] = []
    for err in exc.errors():
        item: dict[str, Any] = {"loc": list(err.get("loc", ())), "msg": err.get("msg", "")}
        if "type" in err:
            item["type"] = err["type"]
        out.append(item)
    return out


def _too_large_detail(scope: Scope) -> str:
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    return "Request body too large" + (f" (limit {limit} bytes)" if limit else "")


class JsonTooLarge:
    """FastAPI's body limit (``max_body_size``) answers a declared-too-large body with a
    plain-text 413 of its own; this gives it Loom's one error body shape instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def json_send(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    replacing = True
                    body = _json(413, _too_large_detail(scope)).body
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 413,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            if replacing:
                return
            await send(message)

        await self.app(scope, receive, json_send)


def install_error_handlers(app: FastAPI) -> None:
    async def loom_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LoomError)
        status = http_status(exc.code)
        if status >= 500:
            log.warning("request failed: %s", exc.message)
        return _json(status, _loom_detail(exc, status), error_headers(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _json(422, _validation_detail(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if exc.status_code == 413:
            detail = _too_large_detail(request.scope)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        if exc.status_code == 422 and not isinstance(detail, list):
            detail = [{"loc": ["body"], "msg": str(detail), "type": "invalid_input"}]
        return _json(exc.status_code, detail, headers or None)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        code, message = public_error(exc)
        if code != "internal":  # e.g. the database is unreachable: 503
            log.warning("request failed: %r", exc)
            return _json(http_status(code), message)
        log.exception("unhandled error", exc_info=exc)
        return _json(500, INTERNAL_MESSAGE)

    app.add_exception_handler(LoomError, loom_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(JsonTooLarge)
