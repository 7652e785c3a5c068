"""The one place the Assistants protocol maps Loom's error codes to OpenAI's error shape.

``{"error": {"message", "type", "param", "code"}}`` with the statuses the ``openai`` SDK
turns into its exception classes (400 ``BadRequestError``, 401 ``AuthenticationError``,
403 ``PermissionDeniedError``, 404 ``NotFoundError``, 409 ``ConflictError``, 422
``UnprocessableEntityError``, 429 ``RateLimitError`` (with ``Retry-After``, which the SDK
honours when it retries), 5xx ``InternalServerError``). As OpenAI
did, a run on a thread that already has one is a 400, and invalid input is a 400.

:func:`install` wraps the app's exception handlers: requests under ``/v1`` get this shape,
every other path keeps the native ``{"detail": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from loom.api.errors import allowed_methods
from loom.errors import INTERNAL_MESSAGE, LoomError, RateLimited, Unauthorized

log = logging.getLogger("loom.openai")

PATH_PREFIX = "/v1"

# Loom code -> (HTTP status, OpenAI error type, OpenAI error code)
_MAPPING: dict[str, tuple[int, str, str | None]] = {
    "bad_request": (400, "invalid_request_error", None),
    "invalid_input": (400, "invalid_request_error", None),
    "thread_busy": (400, "invalid_request_error", "thread_busy"),
    "unauthorized": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden": (403, "permission_error", None),
    "not_found": (404, "invalid_request_error", None),
    "conflict": (409, "invalid_request_error", "conflict"),
    "too_large": (413, "invalid_request_error", "file_too_large"),
    "unsupported_media_type": (415, "invalid_request_error", "unsupported_file"),
    "cancelled": (400, "invalid_request_error", "run_cancelled"),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    "upstream_error": (502, "server_error", None),
    "upstream_timeout": (504, "server_error", "timeout"),
    "unavailable": (503, "server_error", None),
    "run_lost": (500, "server_error", None),
    "internal": (500, "server_error", None),
}
_BY_STATUS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "file_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def status_of(code: str) -> int:
    return _MAPPING.get(code, _MAPPING["internal"])[0]


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=type_, param=param, code=code))
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


def loom_error_response(exc: LoomError, request: Request | None = None) -> JSONResponse:
    status, type_, code = _MAPPING.get(exc.code, _MAPPING["internal"])
    if isinstance(exc, Unauthorized):
        status, type_, code = _MAPPING["unauthorized"]
    if status >= 500:
        log.warning("/v1 request failed: %s", exc.message)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return error_response(status, exc.message, type_, code, headers=headers)


def _validation(exc: RequestValidationError, request: Request) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    message = first.get("msg", "Invalid request")
    text = f"Invalid value for '{param}': {message}" if param else str(message)
    return error_response(400, text, "invalid_request_error", "invalid_value", param)


def _http(exc: StarletteHTTPException, request: Request) -> JSONResponse:
    type_, code = _BY_STATUS.get(exc.status_code, ("server_error", None))
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404:
        message = "Not found"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, message, type_, code, headers=headers)


def _unexpected(exc: Exception, request: Request) -> JSONResponse:
    log.error("unhandled error under /v1", exc_info=exc)
    return error_response(500, INTERNAL_MESSAGE, "server_error")


Handler = Callable[[Request, Exception], Awaitable[Response] | Response]


def install(app: FastAPI) -> None:
    """Answer errors of ``/v1`` requests in OpenAI's shape; leave other paths to the native
    handlers (call after :func:`loom.api.errors.install_error_handlers`)."""
    mine: dict[Any, Callable[[Any, Request], JSONResponse]] = {
        LoomError: loom_error_response,
        RequestValidationError: _validation,
        StarletteHTTPException: _http,
        Exception: _unexpected,
    }
    for exc_class, handle in mine.items():
        native: Handler | None = app.exception_handlers.get(exc_class)

        async def dispatch(
            request: Request,
            exc: Exception,
            handle: Callable[[Any, Request], JSONResponse] = handle,
            native: Handler | None = native,
        ) -> Response:
            if is_v1(request.url.path) or native is None:
                return handle(exc, request)
            result = native(request, exc)
            return await result if isinstance(result, Awaitable) else result

        app.add_exception_handler(exc_class, dispatch)


def is_v1(path: str) -> bool:
    return path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/")
