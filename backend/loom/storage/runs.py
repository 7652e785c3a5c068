"""The ``run`` table: one row per run, with its status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import psycopg.errors
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool
from loom.errors import Conflict

RunStatus = Literal["pending", "running", "success", "error", "interrupted", "cancelled"]
ACTIVE: tuple[RunStatus, ...] = ("pending", "running")


class Run(BaseModel):
    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None
    user_id: str
    status: RunStatus
    input: Any = None
    config: dict[str, Any] = {}
    error: str | None = None
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "run_id, thread_id, assistant_id, user_id, status, input, config, error, created_at, updated_at"
)


class RunRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self,
        user_id: str,
        thread_id: uuid.UUID,
        assistant_id: uuid.UUID | None,
        input: Any,
        config: dict[str, Any],
    ) -> Run:
        """Record a pending run; 409 when the thread already has an active one."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO run (run_id, thread_id, assistant_id, user_id, status, input,"
                    f" config) VALUES (%s, %s, %s, %s, 'pending', %s, %s) RETURNING {_COLUMNS}",
                    (uuid.uuid4(), thread_id, assistant_id, user_id, Jsonb(input), Jsonb(config)),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(
                "This thread already has a run in progress; wait for it to finish or cancel it"
            ) from exc
        assert row is not None
        return Run.model_validate(row)

    async def get_own(self, user_id: str, run_id: uuid.UUID) -> Run | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM run WHERE run_id = %s AND user_id = %s",
                (run_id, user_id),
            )
            row = await cur.fetchone()
        return Run.model_validate(row) if row else None

    async def set_status(
        self, run_id: uuid.UUID, status: RunStatus, error: str | None = None
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE run SET status = %s, error = %s, updated_at = now() WHERE run_id = %s",
                (status, error, run_id),
            )

    async def active_ids(self, thread_id: uuid.UUID) -> list[uuid.UUID]:
        """The thread's pending or running runs (at most one, by the unique index)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT run_id FROM run WHERE thread_id = %s AND status = ANY(%s)",
                (thread_id, list(ACTIVE)),
            )
            return [row["run_id"] for row in await cur.fetchall()]

    async def mark_running(self, run_id: uuid.UUID) -> None:
        """pending -> running (never overwrites a status the run already ended with)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE run SET status = 'running', updated_at = now()"
                " WHERE run_id = %s AND status = 'pending'",
                (run_id,),
            )

    async def fail_stale(self, reason: str) -> int:
        """Mark runs left active by a stopped server as failed (called before serving)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE run SET status = 'error', error = %s, updated_at = now()"
                " WHERE status IN ('pending', 'running')",
                (reason,),
            )
            return cur.rowcount
