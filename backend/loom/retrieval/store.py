"""The pgvector side of retrieval: the vector index, writing chunks, nearest-neighbour search.

The ``document.embedding`` column is an untyped ``vector`` (the dimension is a setting), so the
index is an expression index over a cast to the configured dimension, partial on rows of that
dimension, created at start-up::

    CREATE INDEX IF NOT EXISTS document_embedding_<dims>_hnsw ON document
        USING hnsw ((embedding::vector(<dims>)) vector_cosine_ops)
        WHERE vector_dims(embedding) = <dims>

Searches use the same expression and predicate, so the planner can use it. Up to 2,000
dimensions the cast is to ``vector``; up to 4,000 (e.g. ``text-embedding-3-large``'s 3,072) to
``halfvec``, pgvector's limits for HNSW; above that there is no index and search is exact.
Filtered HNSW scans use pgvector's iterative scan (``hnsw.iterative_scan = strict_order``), so
a small namespace in a big table still gets its ``k`` nearest chunks.

Vectors travel as text literals (``'[0.1,0.2,...]'``): no type adapter to register per
connection.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgvector import Vector
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from loom.db.types import Pool, Row
from loom.storage.paging import Page, PageRequest, Position, keyset, page_of
from loom.tools.base import RetrievedChunk

log = logging.getLogger("loom.retrieval")

HNSW_MAX_VECTOR_DIMS = 2000
HNSW_MAX_HALFVEC_DIMS = 4000
_INDEX_LOCK_KEY = 0x106D_0002  # advisory lock: one process creates the index at a time


def vector_literal(values: Sequence[float]) -> Vector:
    """A vector for pgvector's psycopg adapter (sent in binary)."""
    return Vector([float(v) for v in values])


@dataclass(frozen=True)
class ChunkRow:
    """One chunk to store."""

    content: str
    metadata: dict[str, Any]
    embedding: Vector
    id: uuid.UUID


class VectorStore:
    """Chunks in the ``document`` table, searched by cosine distance within namespaces."""

    def __init__(self, pool: Pool, dimensions: int) -> None:
        self._pool = pool
        self.dimensions = d = int(dimensions)
        kind = "vector" if d <= HNSW_MAX_VECTOR_DIMS else "halfvec"
        self.indexed = d <= HNSW_MAX_HALFVEC_DIMS
        self.index_name = f"document_embedding_{d}_hnsw"
        self._expression = f"(embedding::{kind}({d}))"
        self._query_cast = f"{kind}({d})"
        self._ops = f"{kind}_cosine_ops"
        self._predicate = f"vector_dims(embedding) = {d}"
        self._adapted: weakref.WeakSet[AsyncConnection[Row]] = weakref.WeakSet()

    async def _adapt(self, conn: AsyncConnection[Row]) -> None:
        """pgvector's adapters on ``conn``, once per connection (the extension exists by then:
        the first migration creates it, after the pool opened its first connections)."""
        if conn not in self._adapted:
            await register_vector_async(conn)
            self._adapted.add(conn)

    @property
    def index_sql(self) -> str:
        return (
            f"CREATE INDEX IF NOT EXISTS {self.index_name} ON document"
            f" USING hnsw ({self._expression} {self._ops}) WHERE {self._predicate}"
        )

    @property
    def search_sql(self) -> str:
        """The nearest-neighbour query (params: ``query`` vector literal, ``namespaces``, ``k``)."""
        distance = f"{self._expression} <=> CAST(%(query)b AS {self._query_cast})"
        return (
            f"SELECT id, namespace, content, metadata, {distance} AS distance FROM document"
            f" WHERE {self._predicate} AND namespace = ANY(%(namespaces)s)"
            f" ORDER BY {distance} LIMIT %(k)s"
        )

    async def ensure_index(self) -> None:
        """Create the HNSW index for the configured dimension if it does not exist."""
        if not self.indexed:
            log.warning(
                "no vector index for %d dimensions (HNSW supports up to %d): searches are exact",
                self.dimensions,
                HNSW_MAX_HALFVEC_DIMS,
            )
            return
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_INDEX_LOCK_KEY,))
            try:
                await conn.execute(self.index_sql.encode())
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_INDEX_LOCK_KEY,))

    async def add(
        self, conn: AsyncConnection[Row], namespace: str, rows: Sequence[ChunkRow]
    ) -> None:
        """Write ``rows`` on ``conn`` (inside the caller's transaction)."""
        await self._adapt(conn)
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY document (id, namespace, content, metadata, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "text", "text", "jsonb", "vector"])
            for row in rows:
                await copy.write_row(
                    (row.id, namespace, row.content, Jsonb(row.metadata), row.embedding)
                )

    async def stage(
        self, conn: AsyncConnection[Row], batch: uuid.UUID, rows: Sequence[ChunkRow]
    ) -> None:
        """Write ``rows`` to ``document_staging`` under ``batch`` (not searchable yet)."""
        await self._adapt(conn)
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY document_staging (batch_id, id, content, metadata, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "uuid", "text", "jsonb", "vector"])
            for row in rows:
                await copy.write_row(
                    (batch, row.id, row.content, Jsonb(row.metadata), row.embedding)
                )

    async def publish_staged(
        self, conn: AsyncConnection[Row], batch: uuid.UUID, namespace: str
    ) -> None:
        """Move ``batch`` from staging into ``document`` (inside the caller's transaction)."""
        await conn.execute(
            "INSERT INTO document (id, namespace, content, metadata, embedding)"
            " SELECT id, %s, content, metadata, embedding FROM document_staging"
            " WHERE batch_id = %s",
            (namespace, batch),
        )
        await self.discard_staged(conn, batch)

    async def discard_staged(self, conn: AsyncConnection[Row], batch: uuid.UUID) -> None:
        await conn.execute("DELETE FROM document_staging WHERE batch_id = %s", (batch,))

    async def purge_staged(self) -> int:
        """Delete staged rows a crashed process left behind (older than a day)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM document_staging WHERE created_at < now() - interval '1 day'"
            )
            return cur.rowcount

    async def delete_ids(self, namespace: str, ids: Sequence[str]) -> int:
        """Delete the documents with these ids in ``namespace``; returns how many went."""
        if not ids:
            return 0
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM document WHERE namespace = %s AND id = ANY(%s::uuid[])",
                (namespace, list(ids)),
            )
            return cur.rowcount

    async def has_documents(self, namespaces: Sequence[str]) -> bool:
        if not namespaces:
            return False
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM document WHERE namespace = ANY(%s)) AS found",
                (list(namespaces),),
            )
            row = await cur.fetchone()
        return bool(row and row["found"])

    async def search(
        self, namespaces: Sequence[str], query: Sequence[float], k: int
    ) -> list[RetrievedChunk]:
        """The ``k`` chunks nearest to ``query`` in ``namespaces``, nearest first."""
        if not namespaces or k < 1:
            return []
        params = {"query": vector_literal(query), "namespaces": list(namespaces), "k": k}
        async with self._pool.connection() as conn, conn.transaction():
            await self._adapt(conn)
            await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            await conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * k)}".encode())
            cur = await conn.execute(self.search_sql.encode(), params)
            rows = await cur.fetchall()
        return [_chunk(row) for row in rows]

    async def delete(self, namespace: str, metadata: dict[str, str] | None = None) -> int:
        """Delete the documents of ``namespace`` whose metadata contains ``metadata``."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM document WHERE namespace = %s AND metadata @> %s",
                (namespace, Jsonb(metadata or {})),
            )
            return cur.rowcount

    async def files(self, namespace: str, request: PageRequest) -> Page[dict[str, Any]]:
        """The files whose chunks ``namespace`` holds (by file name), oldest first, a page at
        a time."""
        where, order, params = keyset(
            "min(created_at)", "metadata->>'filename'", request, descending=False, cast="text"
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT metadata->>'filename' AS filename,"
                " max(metadata->>'content_type') AS content_type, count(*) AS chunks,"
                " min(created_at) AS created_at FROM document"
                " WHERE namespace = %(ns)s AND metadata ? 'filename'"
                f" GROUP BY 1 HAVING {where}{order}",
                {"ns": namespace, **params},
            )
            rows = [dict(row) for row in await cur.fetchall()]
        return page_of(rows, request, lambda f: Position(f["created_at"], f["filename"]))

    async def count(self, namespace: str) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM document WHERE namespace = %s", (namespace,)
            )
            row = await cur.fetchone()
        return int(row["n"]) if row else 0


def _chunk(row: Row) -> RetrievedChunk:
    metadata: dict[str, Any] = dict(row["metadata"] or {})
    source = metadata.get("source")
    page = metadata.get("page")
    if isinstance(source, str) and isinstance(page, int):
        source = f"{source}, page {page}"
    return RetrievedChunk(
        content=row["content"],
        source=source if isinstance(source, str) else None,
        score=1.0 - float(row["distance"]),
        metadata={**metadata, "id": str(row["id"]), "namespace": row["namespace"]},
    )
