"""One error tree with stable codes, shared by the core and every protocol.

Only :class:`LoomError` subclasses carry a message meant for clients; each has a stable
``code`` (``"not_found"``, ``"thread_busy"``, ...). The core raises these and knows nothing
of HTTP: each protocol maps codes to its own wire shape in one place (the native API in
:mod:`loom.api.errors`). Anything else that escapes is logged with its stack trace and
answered with a generic message: internals never reach a client.
"""

from __future__ import annotations

from typing import Any, ClassVar

INTERNAL_MESSAGE = "Internal server error"


class LoomError(Exception):
    """Base of every error whose message is safe to show a client."""

    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = INTERNAL_MESSAGE

    def __init__(
        self, message: str | None = None, *, detail: Any = None, loc: tuple[str | int, ...] = ()
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail if detail is not None else self.message
        # Where the invalid value is, for protocols that say so ("body", "input", ...).
        self.loc: tuple[str | int, ...] = loc or ("body",)
        super().__init__(self.message)


class BadRequest(LoomError):
    code = "bad_request"
    default_message = "Bad request"


class Unauthorized(LoomError):
    code = "unauthorized"
    default_message = "Not authenticated"


class Forbidden(LoomError):
    """Authenticated, but these credentials may not do this (e.g. an API key managing keys)."""

    code = "forbidden"
    default_message = "Not allowed with these credentials"


class NotFound(LoomError):
    code = "not_found"
    default_message = "Not found"


class Conflict(LoomError):
    code = "conflict"
    default_message = "Conflict"


class ThreadBusy(Conflict):
    """The thread already has an active run and the new run's strategy is ``reject``."""

    code = "thread_busy"
    default_message = (
        "This thread already has a run in progress; wait for it to finish or cancel it"
    )


class PayloadTooLarge(LoomError):
    code = "too_large"
    default_message = "Request body too large"


class UnsupportedMediaType(LoomError):
    code = "unsupported_media_type"
    default_message = "Unsupported media type"


class InvalidInput(LoomError):
    code = "invalid_input"
    default_message = "Invalid input"


class RunCancelled(LoomError):
    """A run was stopped by a client (cancel, disconnect, or a newer run's strategy)."""

    code = "cancelled"
    default_message = "The run was cancelled"


class UpstreamError(LoomError):
    """The model provider (or another upstream service) failed."""

    code = "upstream_error"
    default_message = "The model provider failed to answer"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    default_message = "The model provider did not answer in time"


class ServiceUnavailable(LoomError):
    code = "unavailable"
    default_message = "Service unavailable"


class RateLimited(LoomError):
    """A per-user limit or quota was reached; ``retry_after`` says when to try again."""

    code = "rate_limited"
    default_message = "Too many requests; try again later"

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class RunLost(LoomError):
    """A run's worker stopped too many times; the run was given up."""

    code = "run_lost"
    default_message = "The run was stopped repeatedly before it could finish"


DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly"


def public_error(exc: BaseException) -> tuple[str, str]:
    """The stable code and client-safe message for any exception."""
    if isinstance(exc, LoomError):
        return exc.code, exc.message
    if _database_unreachable(exc):
        return ServiceUnavailable.code, DATABASE_UNAVAILABLE
    return LoomError.code, INTERNAL_MESSAGE


def _database_unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection, or no pooled connection in time."""
    from psycopg import OperationalError
    from psycopg_pool import PoolTimeout

    return isinstance(exc, OperationalError | PoolTimeout)
