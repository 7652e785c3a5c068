"""Prometheus metrics of one Loom process (``GET /metrics``, text exposition format).

Each process keeps its own registry (made by :func:`loom.runtime.open_runtime`, passed to
whoever counts): server processes answer ``GET /metrics``; ``loom worker`` processes serve
the same text on ``LOOM_METRICS_PORT`` when it is set. In the scaled form, scrape every
process; counters are per process and add up across them.

What is counted, and where (all of it per run, per request or per batch, never per token):

* ``loom_runs_finished_total{status}``: runs this process executed to an outcome;
* ``loom_run_duration_seconds``: claim to outcome; ``loom_run_first_token_seconds``: claim to
  the first text token of the run; ``loom_run_claim_wait_seconds``: created to first claimed
  (the queue's latency);
* ``loom_runs{status="pending"|"running"}``: the queue as the database sees it (all
  processes), read when scraped;
* ``loom_streams_open``: run streams being followed by clients of this process;
* ``loom_tokens_streamed_total``: text deltas published (counted per run, added at its end);
* ``loom_run_errors_total{code}``: runs ended by an error, by stable code (``upstream_error``,
  ``upstream_timeout``, ``unavailable``, ``internal``, ...): the model's failures by kind;
* ``loom_tool_errors_total{tool,kind}``: tool calls that answered the model with an error;
* ``loom_ingest_jobs_total{mode,status}``: ingests (``sync`` or ``async``) by outcome.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from loom.db.types import Pool

CONTENT_TYPE = CONTENT_TYPE_LATEST
T = TypeVar("T")

# Seconds: from sub-second replies to long agent runs.
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_QUEUE = """
SELECT status, count(*) AS n FROM run WHERE status IN ('pending', 'running') GROUP BY status
"""

_TOOL_ERROR_KINDS = (
    ("timed out after", "timeout"),
    ("refused:", "refused"),
    ("answered HTTP", "http_status"),
    ("request failed", "network"),
    ("could not read", "bad_answer"),
    ("invalid arguments", "invalid_arguments"),
    ("failed unexpectedly", "unexpected"),
)


def tool_error_kind(text: str) -> str:
    """The kind of a tool's error text (the phrases :func:`loom.tools.base.make_tool` uses)."""
    for phrase, kind in _TOOL_ERROR_KINDS:
        if phrase in text:
            return kind
    return "error"


class Metrics:
    """The metrics of one process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.runs_finished = Counter(
            "loom_runs_finished", "Runs this process executed to an outcome", ["status"], registry=r
        )
        self.run_duration = Histogram(
            "loom_run_duration_seconds",
            "From a run's claim to its outcome",
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "loom_run_first_token_seconds",
            "From a run's claim to its first text token",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.claim_wait = Histogram(
            "loom_run_claim_wait_seconds",
            "From a run's creation to its first claim by a worker",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "loom_runs", "Runs pending or running (all processes)", ["status"], registry=r
        )
        self.streams_open = Gauge(
            "loom_streams_open", "Run streams followed by clients of this process", registry=r
        )
        self.tokens = Counter(
            "loom_tokens_streamed", "Text deltas published by runs of this process", registry=r
        )
        self.run_errors = Counter(
            "loom_run_errors", "Runs ended by an error, by code", ["code"], registry=r
        )
        self.tool_errors = Counter(
            "loom_tool_errors",
            "Tool calls that failed, by tool and kind",
            ["tool", "kind"],
            registry=r,
        )
        self.ingest_jobs = Counter(
            "loom_ingest_jobs", "Ingests by mode and outcome", ["mode", "status"], registry=r
        )
        for status in ("pending", "running"):
            self.queue.labels(status)

    # --- recording ----------------------------------------------------------------------------

    def run_finished(
        self, status: str, seconds: float, tokens: int, first_token: float | None
    ) -> None:
        self.runs_finished.labels(status).inc()
        self.run_duration.observe(seconds)
        if tokens:
            self.tokens.inc(tokens)
        if first_token is not None:
            self.first_token.observe(first_token)

    def tool_failed(self, tool: str, text: str) -> None:
        self.tool_errors.labels(tool, tool_error_kind(text)).inc()

    async def counted(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """``events``, counted in ``loom_streams_open`` while they are followed."""
        self.streams_open.inc()
        try:
            async for item in events:
                yield item
        finally:
            self.streams_open.dec()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    # --- exposition ---------------------------------------------------------------------------

    async def refresh(self, pool: Pool) -> None:
        """Read what lives in the database (the queue) into the gauges."""
        async with pool.connection(timeout=5) as conn:
            cur = await conn.execute(_QUEUE)
            counts: dict[str, Any] = {row["status"]: row["n"] for row in await cur.fetchall()}
        for status in ("pending", "running"):
            self.queue.labels(status).set(int(counts.get(status, 0)))

    def render(self) -> bytes:
        text: bytes = generate_latest(self.registry)
        return text


def since(started: float) -> float:
    return time.monotonic() - started
