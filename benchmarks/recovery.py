"""Crash recovery: time from ``kill -9`` of the worker holding a run to the run completing on
another worker.

One ``loom serve --no-worker`` and two ``loom worker`` processes (Redis, a short lease). Each
trial starts a background run whose reply streams for ``reply_seconds``, waits until a worker
holds it and tokens flow, kills that worker with SIGKILL, and polls the run's row: when another
worker claims it (the lease lapsed and the sweeper requeued it) and when it ends. A new worker
replaces the killed one before the next trial.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

import psycopg
import requests
from psycopg.rows import dict_row

from benchmarks.forms import (
    PY,
    Backend,
    _flush_redis,
    _free_port,
    _loom_env,
    _process,
    _wait_for_port,
)


def _row(db: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT status, attempt, lease_owner FROM run WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return row


def _pid(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


def measure(backend: Backend, lease_seconds: float, trials: int) -> dict[str, Any]:
    _flush_redis(backend.redis_url)
    port = _free_port()
    env = _loom_env(
        backend,
        port,
        LOOM_REDIS_URL=backend.redis_url,
        LOOM_LEASE_SECONDS=str(lease_seconds),
        LOOM_WORKER_POLL_SECONDS="1",
    )
    from contextlib import ExitStack

    claimed: list[float] = []
    completed: list[float] = []
    attempts: list[int] = []
    with ExitStack() as stack:
        api = stack.enter_context(
            _process(
                "recovery-api",
                "loom serve --no-worker",
                [PY, "-m", "loom", "serve", "--no-worker"],
                env,
                backend.log_dir,
            )
        )
        _wait_for_port(port, [api])
        workers = {}

        def start_worker(i: int) -> None:
            child = stack.enter_context(
                _process(
                    f"recovery-worker-{i}",
                    "loom worker",
                    [PY, "-m", "loom", "worker"],
                    env,
                    backend.log_dir,
                )
            )
            workers[child.pid] = child

        start_worker(0)
        start_worker(1)
        time.sleep(2.0)  # both workers up
        url = f"http://127.0.0.1:{port}"
        http = requests.Session()
        http.cookies.set("opengpts_user_id", "bench-recovery")
        assistant = http.post(
            f"{url}/assistants",
            json={"name": "r", "config": {"configurable": {"type": "chatbot"}}},
        ).json()["assistant_id"]
        for trial in range(trials):
            thread = http.post(
                f"{url}/threads", json={"name": "r", "assistant_id": assistant}
            ).json()["thread_id"]
            body = {"thread_id": thread, "input": [{"type": "human", "content": "hi"}]}
            run_id = http.post(f"{url}/runs", json=body).json()["run_id"]
            deadline = time.monotonic() + 30
            holder = None
            while holder is None and time.monotonic() < deadline:
                holder = _pid(_row(backend.database_url, run_id)["lease_owner"])
                time.sleep(0.01)
            if holder is None or holder not in workers:
                raise RuntimeError("no worker claimed the run")
            time.sleep(0.3)  # tokens are flowing
            os.kill(holder, signal.SIGKILL)
            killed = time.monotonic()
            workers.pop(holder).proc.wait(timeout=10)
            got_claim = None
            while True:
                row = _row(backend.database_url, run_id)
                now = time.monotonic()
                if got_claim is None and _pid(row["lease_owner"]) not in (None, holder):
                    got_claim = now - killed
                if row["status"] not in ("pending", "running"):
                    break
                if now - killed > 60:
                    raise RuntimeError("the run did not complete elsewhere within 60 s")
                time.sleep(0.01)
            if row["status"] != "success":
                raise RuntimeError(f"the run ended {row['status']}")
            claimed.append(got_claim if got_claim is not None else float("nan"))
            completed.append(time.monotonic() - killed)
            attempts.append(int(row["attempt"]))
            print(
                f"  trial {trial + 1}: claimed elsewhere after {claimed[-1]:.2f} s,"
                f" completed after {completed[-1]:.2f} s (attempt {attempts[-1]})",
                flush=True,
            )
            start_worker(trial + 2)
            time.sleep(1.5)
    return {
        "lease_seconds": lease_seconds,
        "trials": trials,
        "claimed_s_median": statistics.median(claimed),
        "completed_s_median": statistics.median(completed),
        "attempts": attempts,
    }


def report_line(result: dict[str, Any], reply_seconds: float) -> str:
    lease = result["lease_seconds"]
    return (
        f"  kill -9 -> claimed by the other worker: {result['claimed_s_median']:.2f} s median,"
        f" -> run completed: {result['completed_s_median']:.2f} s median"
        f" (LOOM_LEASE_SECONDS={result['lease_seconds']:g}: heartbeats every"
        f" {lease / 3:.2f} s, sweeps every {min(lease / 2, 15):.2f} s;"
        f" the new attempt streams the whole {reply_seconds:.1f} s reply again)"
    )


__all__ = ["measure", "report_line"]
