"""The Assistants protocol's own tables (migration 0012), keyed by Loom's ids.

Assistants, threads and runs are Loom's rows; these records hold what OpenAI's shapes carry
besides them. Files and vector stores exist only here (a vector store's documents are Loom
documents in the collection namespace of the same id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class AssistantExtras(BaseModel):
    assistant_id: uuid.UUID
    unnamed: bool = False
    description: str | None = None
    metadata: dict[str, Any] = {}
    tool_resources: dict[str, Any] = {}


class MessageRecord(BaseModel):
    thread_id: uuid.UUID
    message_id: str
    run_id: uuid.UUID | None = None
    assistant_id: uuid.UUID | None = None
    metadata: dict[str, Any] = {}
    attachments: list[Any] = []
    created_at: datetime


class RunRecord(BaseModel):
    run_id: uuid.UUID
    thread_id: uuid.UUID
    user_id: str
    assistant_id: uuid.UUID
    parts: list[uuid.UUID]
    model: str
    instructions: str
    tools: list[Any] = []
    metadata: dict[str, Any] = {}
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    usage: dict[str, int] | None = None
    settled_part: uuid.UUID | None = None
    cancelled_at: datetime | None = None
    created_at: datetime

    @property
    def current(self) -> uuid.UUID:
        return self.parts[-1]


class FileRecord(BaseModel):
    file_id: uuid.UUID
    user_id: str
    filename: str
    purpose: str
    bytes: int
    created_at: datetime


class VectorStoreRecord(BaseModel):
    vector_store_id: uuid.UUID
    user_id: str
    name: str
    metadata: dict[str, Any] = {}
    expires_after: dict[str, Any] | None = None
    created_at: datetime
    last_active_at: datetime


FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class VectorStoreFileRecord(BaseModel):
    vector_store_id: uuid.UUID
    file_id: uuid.UUID
    status: FileStatus
    last_error: dict[str, Any] | None = None
    usage_bytes: int = 0
    created_at: datetime


class FileBatchRecord(BaseModel):
    batch_id: uuid.UUID
    vector_store_id: uuid.UUID
    file_ids: list[uuid.UUID]
    created_at: datetime


_RUN = (
    "run_id, thread_id, user_id, assistant_id, parts, model, instructions, tools, metadata,"
    " temperature, top_p, response_format, usage, settled_part, cancelled_at, created_at"
)
_FILE = "file_id, user_id, filename, purpose, bytes, created_at"
_STORE = "vector_store_id, user_id, name, metadata, expires_after, created_at, last_active_at"
_STORE_FILE = "vector_store_id, file_id, status, last_error, usage_bytes, created_at"
_MESSAGE = "thread_id, message_id, run_id, assistant_id, metadata, attachments, created_at"


class OpenAIStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    # -- assistants ---------------------------------------------------------------------------

    async def assistant_extras(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AssistantExtras]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM openai_assistant WHERE assistant_id = ANY(%s)", (list(ids),)
            )
            rows = await cur.fetchall()
        return {r["assistant_id"]: AssistantExtras.model_validate(r) for r in rows}

    async def save_assistant_extras(self, extras: AssistantExtras) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO openai_assistant"
                " (assistant_id, unnamed, description, metadata, tool_resources)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (assistant_id) DO UPDATE SET unnamed = EXCLUDED.unnamed,"
                " description = EXCLUDED.description, metadata = EXCLUDED.metadata,"
                " tool_resources = EXCLUDED.tool_resources",
                (
                    extras.assistant_id,
                    extras.unnamed,
                    extras.description,
                    Jsonb(extras.metadata),
                    Jsonb(extras.tool_resources),
                ),
            )

    # -- threads ------------------------------------------------------------------------------

    async def thread_resources(self, thread_id: uuid.UUID) -> dict[str, Any]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tool_resources FROM openai_thread WHERE thread_id = %s", (thread_id,)
            )
            row = await cur.fetchone()
        return dict(row["tool_resources"]) if row else {}

    async def save_thread_resources(self, thread_id: uuid.UUID, resources: dict[str, Any]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO openai_thread (thread_id, tool_resources) VALUES (%s, %s)"
                " ON CONFLICT (thread_id) DO UPDATE SET tool_resources = EXCLUDED.tool_resources",
                (thread_id, Jsonb(resources)),
            )

    # -- messages -----------------------------------------------------------------------------

    async def messages(
        self, thread_id: uuid.UUID, message_ids: Sequence[str]
    ) -> dict[str, MessageRecord]:
        """Records of these messages; those never seen before are recorded now (their
        ``created_at`` is when a client first saw them)."""
        if not message_ids:
            return {}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_MESSAGE} FROM openai_message"
                " WHERE thread_id = %s AND message_id = ANY(%s)",
                (thread_id, list(message_ids)),
            )
            rows = await cur.fetchall()
            missing = sorted(set(message_ids) - {r["message_id"] for r in rows})
            if missing:
                cur = await conn.execute(
                    "INSERT INTO openai_message (thread_id, message_id)"
                    " SELECT %s, m FROM unnest(%s::text[]) AS m ON CONFLICT DO NOTHING"
                    f" RETURNING {_MESSAGE}",
                    (thread_id, missing),
                )
                rows.extend(await cur.fetchall())
        return {r["message_id"]: MessageRecord.model_validate(r) for r in rows}

    async def save_message(
        self,
        thread_id: uuid.UUID,
        message_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        attachments: list[Any] | None = None,
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO openai_message (thread_id, message_id, metadata, attachments)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (thread_id, message_id) DO UPDATE SET"
                " metadata = COALESCE(%s, openai_message.metadata),"
                " attachments = COALESCE(%s, openai_message.attachments)",
                (
                    thread_id,
                    message_id,
                    Jsonb(metadata or {}),
                    Jsonb(attachments or []),
                    _jsonb(metadata),
                    _jsonb(attachments),
                ),
            )

    async def record_run_messages(
        self,
        thread_id: uuid.UUID,
        message_ids: Sequence[str],
        run_id: uuid.UUID,
        assistant_id: uuid.UUID,
    ) -> None:
        if not message_ids:
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO openai_message (thread_id, message_id, run_id, assistant_id)"
                " SELECT %s, m, %s, %s FROM unnest(%s::text[]) AS m"
                " ON CONFLICT (thread_id, message_id) DO UPDATE SET"
                " run_id = COALESCE(openai_message.run_id, EXCLUDED.run_id),"
                " assistant_id = COALESCE(openai_message.assistant_id, EXCLUDED.assistant_id)",
                (thread_id, run_id, assistant_id, list(message_ids)),
            )

    async def delete_message(self, thread_id: uuid.UUID, message_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM openai_message WHERE thread_id = %s AND message_id = %s",
                (thread_id, message_id),
            )

    # -- runs ---------------------------------------------------------------------------------

    async def create_run(self, record: RunRecord) -> RunRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO openai_run ({_RUN}) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {_RUN}",
                (
                    record.run_id,
                    record.thread_id,
                    record.user_id,
                    record.assistant_id,
                    record.parts,
                    record.model,
                    record.instructions,
                    Jsonb(record.tools),
                    Jsonb(record.metadata),
                    record.temperature,
                    record.top_p,
                    _jsonb(record.response_format),
                    _jsonb(record.usage),
                    record.settled_part,
                    record.cancelled_at,
                    record.created_at,
                ),
            )
            row = await cur.fetchone()
        assert row is not None
        return RunRecord.model_validate(row)

    async def run(self, user_id: str, thread_id: uuid.UUID, run_id: uuid.UUID) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN} FROM openai_run"
                " WHERE run_id = %s AND thread_id = %s AND user_id = %s",
                (run_id, thread_id, user_id),
            )
            row = await cur.fetchone()
        return RunRecord.model_validate(row) if row else None

    async def runs(self, thread_id: uuid.UUID) -> list[RunRecord]:
        """The thread's runs, oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN} FROM openai_run WHERE thread_id = %s ORDER BY created_at, run_id",
                (thread_id,),
            )
            rows = await cur.fetchall()
        return [RunRecord.model_validate(r) for r in rows]

    async def last_run(self, thread_id: uuid.UUID) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN} FROM openai_run WHERE thread_id = %s"
                " ORDER BY created_at DESC, run_id DESC LIMIT 1",
                (thread_id,),
            )
            row = await cur.fetchone()
        return RunRecord.model_validate(row) if row else None

    async def add_part(self, run_id: uuid.UUID, part: uuid.UUID) -> RunRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE openai_run SET parts = parts || %s WHERE run_id = %s RETURNING {_RUN}",
                (part, run_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return RunRecord.model_validate(row)

    async def settle(
        self, run_id: uuid.UUID, part: uuid.UUID, usage: dict[str, int] | None
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE openai_run SET settled_part = %s, usage = %s WHERE run_id = %s",
                (part, _jsonb(usage), run_id),
            )

    async def set_run_metadata(self, run_id: uuid.UUID, metadata: dict[str, Any]) -> RunRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE openai_run SET metadata = %s WHERE run_id = %s RETURNING {_RUN}",
                (Jsonb(metadata), run_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return RunRecord.model_validate(row)

    async def mark_cancelled(self, run_id: uuid.UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE openai_run SET cancelled_at = now() WHERE run_id = %s", (run_id,)
            )

    # -- files --------------------------------------------------------------------------------

    async def create_file(
        self, user_id: str, filename: str, purpose: str, content: bytes
    ) -> FileRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO openai_file (file_id, user_id, filename, purpose, bytes, content)"
                f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_FILE}",
                (uuid.uuid4(), user_id, filename, purpose, len(content), content),
            )
            row = await cur.fetchone()
        assert row is not None
        return FileRecord.model_validate(row)

    async def file(self, user_id: str, file_id: uuid.UUID) -> FileRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_FILE} FROM openai_file WHERE file_id = %s AND user_id = %s",
                (file_id, user_id),
            )
            row = await cur.fetchone()
        return FileRecord.model_validate(row) if row else None

    async def files(self, user_id: str) -> list[FileRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_FILE} FROM openai_file WHERE user_id = %s ORDER BY created_at, file_id",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [FileRecord.model_validate(r) for r in rows]

    async def file_content(self, file_id: uuid.UUID) -> bytes:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT content FROM openai_file WHERE file_id = %s", (file_id,)
            )
            row = await cur.fetchone()
        return bytes(row["content"]) if row else b""

    async def delete_file(self, user_id: str, file_id: uuid.UUID) -> list[str]:
        """Delete the file; returns the namespaces it had been ingested into."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT namespace FROM openai_file_use WHERE file_id = %s", (file_id,)
            )
            namespaces = [r["namespace"] for r in await cur.fetchall()]
            await conn.execute(
                "DELETE FROM openai_file WHERE file_id = %s AND user_id = %s", (file_id, user_id)
            )
        return namespaces

    async def file_used_in(self, file_id: uuid.UUID, namespace: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO openai_file_use (file_id, namespace) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (file_id, namespace),
            )

    async def file_not_used_in(self, file_id: uuid.UUID, namespace: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM openai_file_use WHERE file_id = %s AND namespace = %s",
                (file_id, namespace),
            )

    # -- vector stores ------------------------------------------------------------------------

    async def create_store(
        self,
        user_id: str,
        name: str,
        metadata: dict[str, Any],
        expires_after: dict[str, Any] | None,
    ) -> VectorStoreRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO openai_vector_store"
                " (vector_store_id, user_id, name, metadata, expires_after)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {_STORE}",
                (uuid.uuid4(), user_id, name, Jsonb(metadata), _jsonb(expires_after)),
            )
            row = await cur.fetchone()
        assert row is not None
        return VectorStoreRecord.model_validate(row)

    async def store(self, user_id: str, store_id: uuid.UUID) -> VectorStoreRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_STORE} FROM openai_vector_store"
                " WHERE vector_store_id = %s AND user_id = %s",
                (store_id, user_id),
            )
            row = await cur.fetchone()
        return VectorStoreRecord.model_validate(row) if row else None

    async def owned_stores(self, user_id: str, store_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Those of ``store_ids`` that exist and belong to ``user_id``, in the order given."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT vector_store_id FROM openai_vector_store"
                " WHERE vector_store_id = ANY(%s) AND user_id = %s",
                (list(store_ids), user_id),
            )
            found = {r["vector_store_id"] for r in await cur.fetchall()}
        return [s for s in store_ids if s in found]

    async def stores(self, user_id: str) -> list[VectorStoreRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_STORE} FROM openai_vector_store WHERE user_id = %s"
                " ORDER BY created_at, vector_store_id",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [VectorStoreRecord.model_validate(r) for r in rows]

    async def update_store(
        self,
        store_id: uuid.UUID,
        name: str,
        metadata: dict[str, Any],
        expires_after: dict[str, Any] | None,
    ) -> VectorStoreRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE openai_vector_store SET name = %s, metadata = %s, expires_after = %s,"
                f" last_active_at = now() WHERE vector_store_id = %s RETURNING {_STORE}",
                (name, Jsonb(metadata), _jsonb(expires_after), store_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return VectorStoreRecord.model_validate(row)

    async def delete_store(self, user_id: str, store_id: uuid.UUID, namespace: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM openai_vector_store WHERE vector_store_id = %s AND user_id = %s",
                (store_id, user_id),
            )
            if cur.rowcount == 0:
                return False
            await conn.execute("DELETE FROM openai_file_use WHERE namespace = %s", (namespace,))
        return True

    async def store_files(self, store_ids: Sequence[uuid.UUID]) -> list[VectorStoreFileRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_STORE_FILE} FROM openai_vector_store_file"
                " WHERE vector_store_id = ANY(%s) ORDER BY created_at, file_id",
                (list(store_ids),),
            )
            rows = await cur.fetchall()
        return [VectorStoreFileRecord.model_validate(r) for r in rows]

    async def save_store_file(
        self,
        store_id: uuid.UUID,
        file_id: uuid.UUID,
        status: FileStatus,
        last_error: dict[str, Any] | None = None,
        usage_bytes: int = 0,
    ) -> VectorStoreFileRecord | None:
        """Insert or update; ``None`` when the store or the file is gone."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO openai_vector_store_file"
                " (vector_store_id, file_id, status, last_error, usage_bytes)"
                " SELECT %s, %s, %s, %s, %s"
                " WHERE EXISTS (SELECT 1 FROM openai_vector_store WHERE vector_store_id = %s)"
                "   AND EXISTS (SELECT 1 FROM openai_file WHERE file_id = %s)"
                " ON CONFLICT (vector_store_id, file_id) DO UPDATE SET status = EXCLUDED.status,"
                " last_error = EXCLUDED.last_error, usage_bytes = EXCLUDED.usage_bytes"
                f" RETURNING {_STORE_FILE}",
                (
                    store_id,
                    file_id,
                    status,
                    _jsonb(last_error),
                    usage_bytes,
                    store_id,
                    file_id,
                ),
            )
            row = await cur.fetchone()
        return VectorStoreFileRecord.model_validate(row) if row else None

    async def remove_store_file(self, store_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM openai_vector_store_file WHERE vector_store_id = %s AND file_id = %s",
                (store_id, file_id),
            )
            return cur.rowcount > 0

    async def create_batch(
        self, store_id: uuid.UUID, file_ids: Sequence[uuid.UUID]
    ) -> FileBatchRecord:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO openai_file_batch (batch_id, vector_store_id, file_ids)"
                " VALUES (%s, %s, %s) RETURNING batch_id, vector_store_id, file_ids, created_at",
                (uuid.uuid4(), store_id, list(file_ids)),
            )
            row = await cur.fetchone()
        assert row is not None
        return FileBatchRecord.model_validate(row)

    async def batch(self, store_id: uuid.UUID, batch_id: uuid.UUID) -> FileBatchRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT batch_id, vector_store_id, file_ids, created_at FROM openai_file_batch"
                " WHERE batch_id = %s AND vector_store_id = %s",
                (batch_id, store_id),
            )
            row = await cur.fetchone()
        return FileBatchRecord.model_validate(row) if row else None
