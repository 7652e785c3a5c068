"""The run queue: claiming, leasing and settling rows of the ``run`` table.

A worker claims pending runs with ``FOR UPDATE SKIP LOCKED`` and takes a lease: its owner
name, a fresh claim token per acquisition and ``lease_until`` from the database clock. It
renews the lease by heartbeat. Every write a worker makes about a run is conditional on the
run still holding that token, so a worker that lost its lease can never overwrite what
another worker wrote. :meth:`RunQueue.sweep` returns expired leases to ``pending`` (or ends
the run ``error`` after ``max_attempts``), so no thread stays busy forever.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from loom.db.types import Pool
from loom.storage.runs import Run, RunStatus, StopAction

_RUN_COLUMNS = (
    "run.run_id, run.thread_id, run.assistant_id, run.user_id, run.status, run.input,"
    " run.config, run.error, run.multitask_strategy, run.on_disconnect, run.recursion_limit,"
    " run.checkpoint_id, run.rollback_of, run.attempt, run.lease_owner, run.claim_token,"
    " run.stop_action, run.created_at, run.updated_at, run.started_at, run.ended_at,"
    " run.overrides, run.namespaces"
)

# The oldest pending run of each thread that has no running run, oldest first.
_CLAIM = f"""
WITH next AS (
    SELECT r.run_id FROM run r
     WHERE r.status = 'pending'
       AND NOT EXISTS (SELECT 1 FROM run a WHERE a.thread_id = r.thread_id
                          AND (a.status = 'running'
                               OR (a.status = 'pending' AND (a.created_at, a.run_id)
                                                            < (r.created_at, r.run_id))))
     ORDER BY r.created_at
     LIMIT %(n)s
     FOR UPDATE SKIP LOCKED
)
UPDATE run SET status = 'running', lease_owner = %(owner)s, claim_token = gen_random_uuid(),
       lease_until = now() + make_interval(secs => %(lease)s), attempt = run.attempt + 1,
       started_at = coalesce(run.started_at, now()), updated_at = now()
  FROM next WHERE run.run_id = next.run_id
RETURNING {_RUN_COLUMNS},
          run.started_at = now() AS fresh,
          (SELECT config FROM assistant a WHERE a.assistant_id = run.assistant_id)
              AS assistant_config
"""

_HEARTBEAT = """
UPDATE run SET lease_until = now() + make_interval(secs => %(lease)s)
  FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS held(run_id, token)
 WHERE run.run_id = held.run_id AND run.claim_token = held.token AND run.status = 'running'
RETURNING run.run_id, run.stop_action
"""

# Settle a run and touch its thread in one statement; ``more`` says whether the thread has
# queued runs waiting for this one.
_FINISH = """
WITH done AS (
    UPDATE run SET status = %(status)s, error = %(error)s, ended_at = now(), updated_at = now(),
           lease_owner = NULL, claim_token = NULL, lease_until = NULL
     WHERE run_id = %(run_id)s AND claim_token = %(token)s AND status = 'running'
    RETURNING thread_id
), touched AS (
    UPDATE thread SET updated_at = now() FROM done WHERE thread.thread_id = done.thread_id
    RETURNING thread.thread_id
)
SELECT (SELECT count(*) FROM done) AS settled,
       EXISTS (SELECT 1 FROM run p, done WHERE p.thread_id = done.thread_id
                  AND p.status = 'pending') AS more
"""

# A drained worker hands its run back: not a failed attempt. A stop a client asked for wins.
_HAND_BACK = """
UPDATE run SET status = CASE WHEN stop_action IS NULL THEN 'pending' ELSE 'cancelled' END,
       error = CASE WHEN stop_action IS NULL THEN NULL ELSE 'The run was cancelled' END,
       ended_at = CASE WHEN stop_action IS NULL THEN NULL ELSE now() END,
       attempt = CASE WHEN stop_action IS NULL THEN greatest(attempt - 1, 0) ELSE attempt END,
       lease_owner = NULL, claim_token = NULL, lease_until = NULL, updated_at = now()
 WHERE run_id = %(run_id)s AND claim_token = %(token)s AND status = 'running'
RETURNING status
"""

_SWEEP = """
UPDATE run SET
       status = CASE WHEN stop_action IS NOT NULL THEN 'cancelled'
                     WHEN attempt >= %(max)s THEN 'error' ELSE 'pending' END,
       error = CASE WHEN stop_action IS NOT NULL THEN 'The run was cancelled'
                    WHEN attempt >= %(max)s THEN %(lost)s ELSE NULL END,
       ended_at = CASE WHEN stop_action IS NOT NULL OR attempt >= %(max)s THEN now() END,
       lease_owner = NULL, claim_token = NULL, lease_until = NULL, updated_at = now()
 WHERE status = 'running' AND lease_until < now()
RETURNING run_id, thread_id, status, error
"""


@dataclass(frozen=True)
class Claim:
    """A run this worker holds: the row, the assistant's config at claim time, the token."""

    run: Run
    token: uuid.UUID
    assistant_config: dict[str, Any] | None
    # The run's first execution: nothing of it was published or checkpointed before.
    fresh: bool = False

    @property
    def run_id(self) -> uuid.UUID:
        return self.run.run_id


@dataclass(frozen=True)
class Renewal:
    """A heartbeat's answer: runs still held (with any stop a client asked for), runs lost."""

    held: dict[uuid.UUID, StopAction | None]
    lost: list[uuid.UUID]


@dataclass(frozen=True)
class Swept:
    run_id: uuid.UUID
    thread_id: uuid.UUID
    status: RunStatus
    error: str | None


class RunQueue:
    def __init__(self, pool: Pool, lease_seconds: float, max_attempts: int) -> None:
        self._pool = pool
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts

    async def claim(self, owner: str, n: int) -> list[Claim]:
        """Claim up to ``n`` runnable runs for ``owner``."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM, {"n": n, "owner": owner, "lease": self.lease_seconds})
            rows = await cur.fetchall()
        claims = []
        for row in rows:
            config = row.pop("assistant_config")
            fresh = bool(row.pop("fresh"))
            run = Run.model_validate(row)
            assert run.claim_token is not None
            claims.append(
                Claim(run=run, token=run.claim_token, assistant_config=config, fresh=fresh)
            )
        return claims

    async def heartbeat(self, held: dict[uuid.UUID, uuid.UUID]) -> Renewal:
        """Renew the leases of ``held`` (run id -> claim token) in one statement."""
        if not held:
            return Renewal({}, [])
        ids = list(held)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _HEARTBEAT,
                {"lease": self.lease_seconds, "ids": ids, "tokens": [held[i] for i in ids]},
            )
            rows = await cur.fetchall()
        renewed = {row["run_id"]: row["stop_action"] for row in rows}
        return Renewal(renewed, [i for i in ids if i not in renewed])

    async def finish(
        self, run_id: uuid.UUID, token: uuid.UUID, status: RunStatus, error: str | None
    ) -> tuple[bool, bool]:
        """Record a run's outcome if ``token`` still holds it: (settled, thread has more)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _FINISH, {"status": status, "error": error, "run_id": run_id, "token": token}
            )
            row = await cur.fetchone()
        assert row is not None
        return bool(row["settled"]), bool(row["more"])

    async def hand_back(self, run_id: uuid.UUID, token: uuid.UUID) -> RunStatus | None:
        """Return a held run to the queue (``pending``), or ``cancelled`` if a client asked
        to stop it meanwhile; ``None`` when the token no longer holds it."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_HAND_BACK, {"run_id": run_id, "token": token})
            row = await cur.fetchone()
        return row["status"] if row else None

    async def sweep(self, lost_message: str) -> list[Swept]:
        """Settle runs whose lease expired: back to pending, or ``error`` when out of
        attempts (``cancelled`` when a client had asked to stop them)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_SWEEP, {"max": self.max_attempts, "lost": lost_message})
            rows = await cur.fetchall()
        return [Swept(r["run_id"], r["thread_id"], r["status"], r["error"]) for r in rows]

    async def has_pending(self) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM run WHERE status = 'pending') AS any"
            )
            row = await cur.fetchone()
        return bool(row and row["any"])
