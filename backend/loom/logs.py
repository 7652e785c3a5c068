"""Logging: plain text, or one JSON object per line (``LOOM_LOG_FORMAT=json``).

JSON lines carry what a line is about: ``request_id`` (an ``X-Request-ID`` the client sent,
else one made up, and echoed in the response), ``user_id``, ``thread_id`` and ``run_id``. They
live in context variables: a request sets the first in :mod:`loom.api.observe` and the others
as its dependencies resolve them (:mod:`loom.api.deps`); a run's task sets its own ids when it
starts (:mod:`loom.runs.worker`), so everything logged while executing it carries them.

:func:`logging_config` is one ``logging.config.dictConfig`` for Loom and uvicorn alike, handed
to uvicorn too, so that every server process (``--processes N`` starts new ones) logs the
same way.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from loom.settings import Settings

request_id: ContextVar[str | None] = ContextVar("loom_request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("loom_user_id", default=None)
thread_id: ContextVar[str | None] = ContextVar("loom_thread_id", default=None)
run_id: ContextVar[str | None] = ContextVar("loom_run_id", default=None)

_IDS: tuple[tuple[str, ContextVar[str | None]], ...] = (
    ("request_id", request_id),
    ("user_id", user_id),
    ("thread_id", thread_id),
    ("run_id", run_id),
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def current_ids() -> dict[str, str]:
    """The ids of what is being done now (those that are set)."""
    return {name: value for name, var in _IDS if (value := var.get()) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the current ids, and the
    exception (as text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(current_ids())
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``dictConfig`` for Loom's and uvicorn's loggers."""
    formatter: dict[str, Any] = (
        {"()": "loom.logs.JsonFormatter"}
        if settings.log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    level = settings.log_level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "loom", "stream": "ext://sys.stderr"}
    uvicorn = {"handlers": ["default"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"loom": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": {"level": level},
            "uvicorn.access": uvicorn,
        },
        "root": {"handlers": ["default"], "level": level},
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
