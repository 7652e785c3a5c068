"""The ``thread`` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool
from loom.storage.assistants import Assistant
from loom.storage.namespaces import namespace
from loom.storage.paging import Page, PageRequest, Position, keyset, page_of


class Thread(BaseModel):
    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None
    name: str
    user_id: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def position(thread: Thread) -> Position:
    """A thread's place in lists of threads (most recently updated first)."""
    return Position(thread.updated_at, str(thread.thread_id))


_COLUMNS = "thread_id, assistant_id, name, user_id, metadata, created_at, updated_at"


class ThreadRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self,
        user_id: str,
        name: str,
        assistant_id: uuid.UUID | None,
        metadata: dict[str, Any] | None = None,
        thread_id: uuid.UUID | None = None,
    ) -> Thread:
        """Create a thread; ``thread_id`` lets a protocol that hands out the id first (ChatKit)
        create the row under it (an id already taken raises psycopg's ``UniqueViolation``)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO thread (thread_id, user_id, assistant_id, name, metadata)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (thread_id or uuid.uuid4(), user_id, assistant_id, name, Jsonb(metadata or {})),
            )
            row = await cur.fetchone()
        assert row is not None
        return Thread.model_validate(row)

    async def list_own(self, user_id: str) -> list[Thread]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM thread WHERE user_id = %s ORDER BY updated_at DESC",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [Thread.model_validate(r) for r in rows]

    async def page_own(self, user_id: str, request: PageRequest) -> Page[Thread]:
        """The user's threads, most recently updated first, a page at a time."""
        where, order, params = keyset("updated_at", "thread_id", request, descending=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM thread WHERE user_id = %(user)s AND {where}{order}",
                {"user": user_id, **params},
            )
            rows = await cur.fetchall()
        return page_of([Thread.model_validate(r) for r in rows], request, position)

    async def get_own(self, user_id: str, thread_id: uuid.UUID) -> Thread | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM thread WHERE thread_id = %s AND user_id = %s",
                (thread_id, user_id),
            )
            row = await cur.fetchone()
        return Thread.model_validate(row) if row else None

    async def update(
        self,
        user_id: str,
        thread_id: uuid.UUID,
        name: str,
        assistant_id: uuid.UUID | None,
        metadata: dict[str, Any] | None = None,
    ) -> Thread | None:
        """Update a thread the user owns; ``None`` when there is none (never an upsert)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE thread SET name = %s, assistant_id = %s,"
                " metadata = COALESCE(%s, metadata), updated_at = now()"
                f" WHERE thread_id = %s AND user_id = %s RETURNING {_COLUMNS}",
                (
                    name,
                    assistant_id,
                    Jsonb(metadata) if metadata is not None else None,
                    thread_id,
                    user_id,
                ),
            )
            row = await cur.fetchone()
        return Thread.model_validate(row) if row else None

    async def touch(self, thread_id: uuid.UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE thread SET updated_at = now() WHERE thread_id = %s", (thread_id,)
            )

    async def delete(self, user_id: str, thread_id: uuid.UUID) -> bool:
        """Delete the thread row and its documents (the caller deletes its checkpoints)."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM thread WHERE thread_id = %s AND user_id = %s", (thread_id, user_id)
            )
            deleted = cur.rowcount > 0
            if deleted:
                await conn.execute(
                    "DELETE FROM document WHERE namespace = %s", (namespace("thread", thread_id),)
                )
        return deleted

    async def get_own_with_assistant(
        self, user_id: str, thread_id: uuid.UUID
    ) -> tuple[Thread, Assistant | None] | None:
        """The caller's thread and its assistant (``None`` when that is neither the caller's
        nor public), in one round trip: what starting a run reads first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT t.thread_id, t.assistant_id, t.name, t.user_id, t.metadata,"
                " t.created_at, t.updated_at, a.name AS a_name, a.config AS a_config,"
                " a.public AS a_public, a.user_id AS a_user_id, a.created_at AS a_created_at,"
                " a.updated_at AS a_updated_at"
                " FROM thread t LEFT JOIN assistant a ON a.assistant_id = t.assistant_id"
                " AND (a.user_id = %s OR a.public)"
                " WHERE t.thread_id = %s AND t.user_id = %s",
                (user_id, thread_id, user_id),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        thread = Thread.model_validate(row)
        if row["a_config"] is None:
            return thread, None
        assistant = Assistant(
            assistant_id=row["assistant_id"],
            name=row["a_name"],
            config=row["a_config"],
            public=row["a_public"],
            user_id=row["a_user_id"],
            created_at=row["a_created_at"],
            updated_at=row["a_updated_at"],
        )
        return thread, assistant
