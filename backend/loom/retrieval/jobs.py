"""The ``ingest_job`` table: progress of asynchronous ingests, readable from any process.

The process running a job bumps ``updated_at`` at least every :data:`HEARTBEAT_SECONDS`. A
pending or running job not bumped for :data:`STALE_AFTER_SECONDS` belonged to a process that
died; reading it marks it failed (its documents were never committed). Jobs are kept for
:data:`RETENTION_DAYS` days.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool

JobStatus = Literal["pending", "running", "done", "error"]

HEARTBEAT_SECONDS = 10.0
STALE_AFTER_SECONDS = 60.0
RETENTION_DAYS = 7
STALE_MESSAGE = "The server running this ingest stopped before it finished; nothing was stored"

_COLUMNS = (
    "job_id, user_id, namespace, status, files_total, files_done, chunks_total, chunks_done,"
    " error, files, created_at, updated_at"
)


class IngestJob(BaseModel):
    job_id: uuid.UUID
    user_id: str
    namespace: str
    status: JobStatus
    files_total: int
    files_done: int
    chunks_total: int
    chunks_done: int
    error: str | None
    files: list[dict[str, Any]] | None
    created_at: datetime
    updated_at: datetime


class IngestJobRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(self, user_id: str, namespace: str, files_total: int) -> IngestJob:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO ingest_job (job_id, user_id, namespace, status, files_total)"
                f" VALUES (%s, %s, %s, 'pending', %s) RETURNING {_COLUMNS}",
                (uuid.uuid4(), user_id, namespace, files_total),
            )
            row = await cur.fetchone()
        assert row is not None
        return IngestJob.model_validate(row)

    async def get_own(self, user_id: str, job_id: uuid.UUID) -> IngestJob | None:
        """The job if ``user_id`` started it; a job whose process died is marked failed."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_job SET status = 'error', error = %s, updated_at = now()"
                " WHERE job_id = %s AND user_id = %s AND status IN ('pending', 'running')"
                " AND updated_at < now() - make_interval(secs => %s)",
                (STALE_MESSAGE, job_id, user_id, STALE_AFTER_SECONDS),
            )
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM ingest_job WHERE job_id = %s AND user_id = %s",
                (job_id, user_id),
            )
            row = await cur.fetchone()
        return IngestJob.model_validate(row) if row else None

    async def progress(
        self,
        job_id: uuid.UUID,
        *,
        files_done: int | None = None,
        chunks_total: int | None = None,
        chunks_done: int | None = None,
    ) -> None:
        """Record progress (and mark the job running); ``None`` leaves a counter as it is."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_job SET status = 'running',"
                " files_done = coalesce(%s, files_done),"
                " chunks_total = coalesce(%s, chunks_total),"
                " chunks_done = coalesce(%s, chunks_done), updated_at = now()"
                " WHERE job_id = %s AND status IN ('pending', 'running')",
                (files_done, chunks_total, chunks_done, job_id),
            )

    async def heartbeat(self, job_id: uuid.UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_job SET updated_at = now()"
                " WHERE job_id = %s AND status IN ('pending', 'running')",
                (job_id,),
            )

    async def finish(self, job_id: uuid.UUID, files: list[dict[str, Any]]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_job SET status = 'done', files = %s, files_done = files_total,"
                " chunks_done = chunks_total, updated_at = now() WHERE job_id = %s",
                (Jsonb(files), job_id),
            )

    async def fail(self, job_id: uuid.UUID, error: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_job SET status = 'error', error = %s, updated_at = now()"
                " WHERE job_id = %s AND status IN ('pending', 'running')",
                (error, job_id),
            )

    async def purge(self) -> int:
        """Delete jobs older than the retention period; returns how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM ingest_job WHERE created_at < now() - make_interval(days => %s)",
                (RETENTION_DAYS,),
            )
            return cur.rowcount
