"""The ``run`` table: one row per run, and the run *is* its job.

Everything a worker needs to execute a run is in its row (input, config, recursion limit,
checkpoint to fork from, multitask strategy, on_disconnect), plus the queue's columns
(attempt, lease owner, claim token, lease expiry). :mod:`loom.runs.queue` claims and leases
rows; this module creates and reads them and records client requests to stop them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool
from loom.errors import RateLimited, ThreadBusy
from loom.limits import RUN_RETRY_SECONDS
from loom.storage.paging import Page, PageRequest, Position, keyset, page_of

RunStatus = Literal["pending", "running", "success", "error", "interrupted", "cancelled"]
ACTIVE: tuple[RunStatus, ...] = ("pending", "running")
TERMINAL: frozenset[str] = frozenset({"success", "error", "interrupted", "cancelled"})
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
OnDisconnect = Literal["continue", "cancel"]
StopAction = Literal["cancel", "interrupt", "rollback"]


class Run(BaseModel):
    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None
    user_id: str
    status: RunStatus
    input: Any = None
    config: dict[str, Any] = {}
    error: str | None = None
    multitask_strategy: MultitaskStrategy = "reject"
    on_disconnect: OnDisconnect = "continue"
    recursion_limit: int = 25
    checkpoint_id: str | None = None
    rollback_of: uuid.UUID | None = None
    attempt: int = 0
    lease_owner: str | None = None
    claim_token: uuid.UUID | None = None
    stop_action: StopAction | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # Plain assistant-config keys merged over the assistant's config for this run only.
    overrides: dict[str, Any] | None = None
    # Document namespaces this run may search besides its assistant's and thread's.
    namespaces: list[str] = []


_COLUMNS = (
    "run_id, thread_id, assistant_id, user_id, status, input, config, error,"
    " multitask_strategy, on_disconnect, recursion_limit, checkpoint_id, rollback_of, attempt,"
    " lease_owner, claim_token, stop_action, created_at, updated_at, started_at, ended_at,"
    " overrides, namespaces"
)


@dataclass(frozen=True)
class NewRun:
    """What a client asked for: the row a new run starts from."""

    user_id: str
    thread_id: uuid.UUID
    assistant_id: uuid.UUID
    input: Any
    config: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    on_disconnect: OnDisconnect
    recursion_limit: int
    checkpoint_id: str | None
    overrides: dict[str, Any] | None = None
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Created:
    """A new run, and the runs its strategy displaced."""

    run: Run
    cancelled: list[uuid.UUID]  # pending runs cancelled (interrupt, rollback)
    stopping: list[uuid.UUID]  # running runs asked to stop (interrupt, rollback)


class RunRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self,
        new: NewRun,
        *,
        claim_owner: str | None = None,
        lease_seconds: float = 30.0,
        notify: bool = True,
        max_active: int = 0,
    ) -> Created:
        """Record a run in one round trip (see ``loom_create_run`` in the migrations).

        Raises :class:`ThreadBusy` when the thread has an active run and the strategy is
        ``reject``, :class:`RateLimited` when the user already has ``max_active`` runs pending
        or running (0: no limit). With ``claim_owner`` an idle thread's run is created
        already claimed.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT loom_create_run(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s) AS r",
                (
                    uuid.uuid4(),
                    new.thread_id,
                    new.assistant_id,
                    new.user_id,
                    Jsonb(new.input),
                    Jsonb(new.config),
                    new.multitask_strategy,
                    new.on_disconnect,
                    new.recursion_limit,
                    new.checkpoint_id,
                    claim_owner,
                    lease_seconds,
                    notify,
                    Jsonb(new.overrides) if new.overrides is not None else None,
                    list(new.namespaces),
                    max_active,
                ),
            )
            row = await cur.fetchone()
        result = row["r"] if row else None
        if result is None:
            raise ThreadBusy()
        if isinstance(result, str):
            result = json.loads(result)
        if "limited" in result:
            raise RateLimited(
                f"Too many runs in progress: at most {max_active} at once; wait for one to end",
                retry_after=RUN_RETRY_SECONDS,
            )
        return Created(
            run=Run.model_validate(result["run"]),
            cancelled=[uuid.UUID(x) for x in result["cancelled"]],
            stopping=[uuid.UUID(x) for x in result["stopping"]],
        )

    async def get(self, run_id: uuid.UUID) -> Run | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM run WHERE run_id = %s", (run_id,))
            row = await cur.fetchone()
        return Run.model_validate(row) if row else None

    async def get_own(self, user_id: str, run_id: uuid.UUID) -> Run | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM run WHERE run_id = %s AND user_id = %s",
                (run_id, user_id),
            )
            row = await cur.fetchone()
        return Run.model_validate(row) if row else None

    async def status(self, run_id: uuid.UUID) -> tuple[str, str | None] | None:
        """(status, error) of a run, or ``None`` when it is gone."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT status, error FROM run WHERE run_id = %s", (run_id,))
            row = await cur.fetchone()
        return (row["status"], row["error"]) if row else None

    async def active_ids(self, thread_id: uuid.UUID) -> list[uuid.UUID]:
        """The thread's pending or running runs, oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT run_id FROM run WHERE thread_id = %s AND status = ANY(%s)"
                " ORDER BY created_at",
                (thread_id, list(ACTIVE)),
            )
            return [row["run_id"] for row in await cur.fetchall()]

    async def page_for_thread(
        self, thread_id: uuid.UUID, statuses: list[str] | None, request: PageRequest
    ) -> Page[Run]:
        """A thread's runs, newest first (only those in ``statuses`` when given), a page at a
        time."""
        where, order, params = keyset("created_at", "run_id", request, descending=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM run WHERE thread_id = %(thread)s"
                " AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))"
                f" AND {where}{order}",
                {"thread": thread_id, "statuses": statuses, **params},
            )
            runs = [Run.model_validate(row) for row in await cur.fetchall()]
        return page_of(runs, request, lambda r: Position(r.created_at, str(r.run_id)))

    async def cancel_pending(self, run_id: uuid.UUID, reason: str) -> bool:
        """pending -> cancelled; ``False`` when the run is no longer pending."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE run SET status = 'cancelled', error = %s, ended_at = now(),"
                " updated_at = now() WHERE run_id = %s AND status = 'pending'",
                (reason, run_id),
            )
            return cur.rowcount > 0

    async def request_stop(self, run_id: uuid.UUID, action: StopAction) -> bool:
        """Record a stop request for a running run (its worker sees it through the cancel
        signal, or at its next heartbeat); ``False`` when the run is not running."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE run SET stop_action = %s, updated_at = now()"
                " WHERE run_id = %s AND status = 'running'",
                (action, run_id),
            )
            return cur.rowcount > 0
