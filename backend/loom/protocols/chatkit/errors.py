"""ChatKit's error mapping: Loom error codes to HTTP answers and to stream ``error`` events.

The one place this protocol turns failures into its wire shapes:

* Before a stream starts (and for every non-streaming request) a failure is an HTTP answer
  ``{"detail": message, "code": code}``: a body that is not a ChatKit request (bad JSON, an
  unknown ``type``, missing params) is 400, a missing or foreign thread, item or attachment
  404, a busy thread 409, ...
* Once a stream has started, a failure is ChatKit's ``error`` event (``allow_retry`` says
  whether the client offers to retry): the run failed, the provider is down, ...

Messages come from :class:`~loom.errors.LoomError` (client-safe by construction) or are fixed
here; nothing else (exception text, stack traces) reaches a client.
"""

from __future__ import annotations

import logging

from chatkit.errors import CustomStreamError
from chatkit.store import NotFoundError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from loom.errors import INTERNAL_MESSAGE, LoomError, RateLimited, public_error

log = logging.getLogger("loom.chatkit")

STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "invalid_input": 400,
    "unauthorized": 401,
    "not_found": 404,
    "conflict": 409,
    "thread_busy": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "cancelled": 409,
    "upstream_error": 502,
    "unavailable": 503,
    "upstream_timeout": 504,
}

# Stream errors after which trying the same turn again may work.
RETRYABLE = frozenset(
    {"thread_busy", "conflict", "upstream_error", "upstream_timeout", "unavailable", "run_lost"}
    | {"rate_limited"}
    | {"internal", "cancelled"}
)


def classify(exc: BaseException) -> tuple[str, str]:
    """The stable code and client-safe message of a failure before or outside a stream."""
    if isinstance(exc, ValidationError):
        places = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        return "bad_request", "Not a valid ChatKit request (check: " + ", ".join(places[:5]) + ")"
    if isinstance(exc, NotFoundError):
        return "not_found", str(exc) or "Not found"
    if isinstance(exc, LoomError):
        return exc.code, exc.message
    if isinstance(exc, NotImplementedError):
        return "bad_request", "This ChatKit operation is not supported by Loom"
    if isinstance(exc, ValueError):
        # The library rejects requests that do not fit the thread (retrying after an item
        # that is not a user message, tool output with no pending client tool call, ...).
        return "bad_request", "This request does not apply to the thread in its current state"
    return public_error(exc)


def http_error(exc: BaseException) -> JSONResponse:
    code, message = classify(exc)
    status = STATUS_BY_CODE.get(code, 500)
    if status >= 500:
        if code == "internal":
            log.error("ChatKit request failed", exc_info=exc)
            message = INTERNAL_MESSAGE
        else:
            log.warning("ChatKit request failed: %s", message)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse({"detail": message, "code": code}, status_code=status, headers=headers)


def stream_error(code: str, message: str) -> CustomStreamError:
    """The ``error`` event for a run that failed with ``code`` (raise it inside a stream)."""
    if code == "internal":
        message = INTERNAL_MESSAGE
    return CustomStreamError(message, allow_retry=code in RETRYABLE)


def stream_error_of(exc: BaseException) -> CustomStreamError:
    code, message = classify(exc)
    if code == "internal":
        log.error("ChatKit turn failed", exc_info=exc)
    return stream_error(code, message)
