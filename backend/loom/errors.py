"""One error tree, mapped to HTTP responses and to SSE ``error`` events in one place.

Only :class:`LoomError` subclasses carry a message meant for clients. Anything else that
escapes is logged with its stack trace and answered with a generic message: internals never
reach a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("loom.errors")

INTERNAL_MESSAGE = "Internal server error"


class LoomError(Exception):
    """Base of every error whose message is safe to show a client."""

    status_code = 500
    default_message = INTERNAL_MESSAGE

    def __init__(self, message: str | None = None, *, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail if detail is not None else self.message
        super().__init__(self.message)


class BadRequest(LoomError):
    status_code = 400
    default_message = "Bad request"


class Unauthorized(LoomError):
    status_code = 401
    default_message = "Not authenticated"


class NotFound(LoomError):
    status_code = 404
    default_message = "Not found"


class Conflict(LoomError):
    status_code = 409
    default_message = "Conflict"


class PayloadTooLarge(LoomError):
    status_code = 413
    default_message = "Request body too large"


class UnsupportedMediaType(LoomError):
    status_code = 415
    default_message = "Unsupported media type"


class InvalidInput(LoomError):
    status_code = 422
    default_message = "Invalid input"


class UpstreamError(LoomError):
    """The model provider (or another upstream service) failed."""

    status_code = 502
    default_message = "The model provider failed to answer"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    default_message = "The model provider did not answer in time"


class ServiceUnavailable(LoomError):
    status_code = 503
    default_message = "Service unavailable"


def public_error(exc: BaseException) -> tuple[int, str]:
    """The status code and client-safe message for any exception."""
    if isinstance(exc, LoomError):
        return exc.status_code, exc.message
    return 500, INTERNAL_MESSAGE


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Pydantic's error list minus the echoed input and the internal URLs.
    out: list[dict[str, Any]] = []
    for err in exc.errors():
        item: dict[str, Any] = {"loc": list(err.get("loc", ())), "msg": err.get("msg", "")}
        if "type" in err:
            item["type"] = err["type"]
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def loom_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LoomError)
        if exc.status_code >= 500:
            log.warning("request failed: %s", exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return _json(exc.status_code, exc.detail, headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _json(422, _validation_detail(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _json(exc.status_code, exc.detail, dict(exc.headers or {}) or None)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _json(500, INTERNAL_MESSAGE)

    app.add_exception_handler(LoomError, loom_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
