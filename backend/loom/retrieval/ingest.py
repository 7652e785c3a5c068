"""Ingest: uploaded files -> text -> chunks -> embeddings -> rows in ``document``, all or nothing.

Pipeline for one request (``POST /ingest``):

1. **Check** every file (before any work): per-file size (413), then what it really is
   (:mod:`loom.retrieval.loaders`; unsupported or mismatched type: 415).
2. **Extract and split** every file in the parse pool: a thread pool of its own,
   ``LOOM_INGEST_PARSE_WORKERS`` threads for the whole process (uploads queue for it rather
   than crowd the shared default pool), with ``LOOM_INGEST_PARSE_SECONDS`` per file and the
   caps of :class:`~loom.retrieval.loaders.ParseLimits` checked before parsing. Text per
   document (per page for PDFs), split with ``RecursiveCharacterTextSplitter``
   (``LOOM_CHUNK_SIZE`` / ``LOOM_CHUNK_OVERLAP``; Markdown-aware separators for Markdown). A
   file that cannot be read: 422; one over a cap: 413.
3. **Embed and store**: chunks are embedded :data:`~loom.retrieval.embeddings.EMBED_BATCH` at
   a time (a few requests in flight); each window of vectors is copied into the
   ``document_staging`` table with a connection taken only for that copy, so no pooled
   connection waits on the embeddings provider and memory stays bounded by a window. At the
   end, one short transaction locks the target assistant or thread (``FOR KEY SHARE``; it must
   still belong to the caller, so an ingest racing a delete never leaves orphan documents) and
   moves the staged rows into ``document``. A failed ingest deletes its staged rows; rows a
   crashed process left behind are purged at start.

Why threads and not a process pool for parsing: every parser input is bounded before it is
parsed (file size, PDF pages, a DOCX's declared uncompressed size and entry count, pypdf's
per-stream decompression caps), so a parse cannot run away in memory, and the deadline is
checked between pages (PDF) and blocks (DOCX), so a parse stops within one page of its time
limit. The request is answered at the limit in any case. A process pool would add a hard
kill for a single pathological page, at the price of a process per parser and of copying
every upload across; the caps make that unnecessary.

Any failure rolls everything back: a request stores all its files or none, and the error names
every file at fault and why (413 over 415 over 422 when several fail).

Each chunk row carries ``metadata = {"source", "filename", "content_type", "chunk"}`` plus
``"page"`` (1-based) for PDFs, and the namespace ``assistant:<id>`` or ``thread:<id>``.

Progress: :meth:`IngestService.ingest` answers when everything is stored;
:meth:`IngestService.start_job` checks the files, records an ``ingest_job`` row (see
:mod:`loom.retrieval.jobs`) and runs steps 2-3 in a background task of this process that
updates the row's counters (``files_done`` while extracting, then ``chunks_total`` /
``chunks_done`` per embedded window) and ends it ``done`` (with per-file chunk counts) or
``error`` (with the message a synchronous request would have answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
from psycopg import AsyncConnection

from loom.db.types import Pool, Row
from loom.errors import (
    INTERNAL_MESSAGE,
    InvalidInput,
    LoomError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from loom.limits import IngestQuota
from loom.metrics import Metrics
from loom.retrieval.embeddings import EMBED_BATCH, Embedder
from loom.retrieval.jobs import HEARTBEAT_SECONDS, IngestJob, IngestJobRepo
from loom.retrieval.loaders import (
    MIME_TYPES,
    FileRejected,
    Kind,
    ParseLimits,
    Upload,
    extract,
    identify,
    too_slow,
)
from loom.retrieval.store import ChunkRow, VectorStore, vector_literal
from loom.settings import Settings
from loom.storage.namespaces import Owner, namespace
from loom.storage.paging import Page, PageRequest

log = logging.getLogger("loom.retrieval")

# Embedding requests in flight at once for one ingest.
EMBED_CONCURRENCY = 4
INTERRUPTED_MESSAGE = "The server shut down before the ingest finished; nothing was stored"


@dataclass(frozen=True)
class Target:
    """Where documents go: an assistant, a thread or a collection, owned by ``user_id``.

    ``metadata`` is added to every chunk's metadata (e.g. the id of the file it came from).
    A collection's record belongs to the protocol that made it, which checks ownership and
    removes the documents of a collection it deletes.
    """

    kind: Owner
    id: uuid.UUID
    user_id: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return namespace(self.kind, self.id)


@dataclass(frozen=True)
class Chunk:
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class FileResult:
    """What one file became."""

    filename: str
    content_type: str
    chunks: int
    ids: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "chunks": self.chunks}


@dataclass(frozen=True)
class CheckedFile:
    upload: Upload
    kind: Kind


class Progress:
    """Receives progress counters; the default ignores them."""

    async def files(self, done: int) -> None:
        return None

    async def chunks(self, done: int, total: int) -> None:
        return None


_STATUS_ORDER = (413, 415, 422)
_ERRORS: dict[int, type[LoomError]] = {
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
}


def rejection(problems: Sequence[FileRejected]) -> LoomError:
    """One client error for the files at fault (the most fundamental status wins)."""
    found = {p.status for p in problems}
    status = next((s for s in _STATUS_ORDER if s in found), 422)
    message = "; ".join(str(p) for p in problems)
    return _ERRORS[status](message)


def splitter_for(kind: Kind, settings: Settings) -> RecursiveCharacterTextSplitter:
    if kind == "markdown":
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
    return RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
    )


def parse_limits(settings: Settings) -> ParseLimits:
    return ParseLimits(
        pdf_max_pages=settings.ingest_max_pdf_pages,
        docx_max_bytes=settings.ingest_max_docx_bytes,
        docx_max_entries=settings.ingest_max_docx_entries,
        seconds=settings.ingest_parse_seconds,
    )


def chunk_file(
    checked: CheckedFile, settings: Settings, limits: ParseLimits | None = None
) -> list[Chunk]:
    """Extract and split one file (blocking: run it in a worker thread)."""
    upload, kind = checked.upload, checked.kind
    splitter = splitter_for(kind, settings)
    chunks: list[Chunk] = []
    limits = (limits or parse_limits(settings)).started()
    for section in extract(upload, kind, limits):
        limits.check_time(upload.filename)
        for piece in splitter.split_text(section.text):
            text = piece.replace("\x00", "").strip()
            if not text:
                continue
            metadata: dict[str, Any] = {
                "source": upload.filename,
                "filename": upload.filename,
                "content_type": MIME_TYPES[kind],
                "chunk": len(chunks),
            }
            if section.page is not None:
                metadata["page"] = section.page
            chunks.append(Chunk(text, metadata))
    if not chunks:
        raise FileRejected(upload.filename, 422, "the file contains no text")
    return chunks


def close_uploads(uploads: Sequence[Upload]) -> None:
    for upload in uploads:
        with contextlib.suppress(Exception):
            upload.file.close()


class _JobProgress(Progress):
    def __init__(self, jobs: IngestJobRepo, job_id: uuid.UUID) -> None:
        self._jobs = jobs
        self._job_id = job_id

    async def files(self, done: int) -> None:
        await self._jobs.progress(self._job_id, files_done=done)

    async def chunks(self, done: int, total: int) -> None:
        await self._jobs.progress(self._job_id, chunks_total=total, chunks_done=done)


class IngestService:
    """Checks, extracts, embeds and stores uploads; runs asynchronous ingest jobs."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore,
        metrics: Metrics | None = None,
        quota: IngestQuota | None = None,
    ) -> None:
        self._pool = pool
        self._quota = quota
        self._metrics = metrics
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.jobs = IngestJobRepo(pool)
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._parser = ThreadPoolExecutor(
            max_workers=settings.ingest_parse_workers, thread_name_prefix="loom-parse"
        )

    # -- public -------------------------------------------------------------------------------

    async def charge(self, user_id: str, nbytes: int) -> None:
        """Count ``nbytes`` uploaded by ``user_id`` today (:class:`RateLimited` over the
        daily quota, and nothing counted)."""
        if self._quota is not None:
            await self._quota.charge(user_id, nbytes)

    async def check(
        self, uploads: Sequence[Upload], *, charge_to: str | None = None
    ) -> list[CheckedFile]:
        """Per-file size (413) and type (415) of every upload, before any work is done; then,
        with ``charge_to``, their bytes are counted in that user's daily upload quota."""
        if not uploads:
            raise InvalidInput("No files were uploaded (send them as multipart field 'files')")
        reason = self.embedder.unavailable_reason()
        if reason is not None:
            raise ServiceUnavailable(f"Embeddings are not configured: {reason}")
        limit = self.settings.ingest_max_file_bytes
        problems: list[FileRejected] = []
        checked: list[CheckedFile] = []
        for upload in uploads:
            if upload.size > limit:
                problems.append(
                    FileRejected(
                        upload.filename, 413, f"{upload.size} bytes is over the limit of {limit}"
                    )
                )
                continue
            try:
                kind = await asyncio.to_thread(identify, upload)
            except FileRejected as exc:
                problems.append(exc)
                continue
            checked.append(CheckedFile(upload, kind))
        if problems:
            raise rejection(problems)
        if charge_to is not None:
            await self.charge(charge_to, sum(u.size for u in uploads))
        return checked

    async def ingest(
        self,
        target: Target,
        uploads: Sequence[Upload],
        progress: Progress | None = None,
        *,
        charge: bool = False,
    ) -> list[FileResult]:
        """Ingest synchronously: returns once every chunk is stored. Closes the uploads.
        ``charge``: the uploads count in the target owner's daily quota (new bytes)."""
        status = "error"
        try:
            checked = await self.check(uploads, charge_to=target.user_id if charge else None)
            results = await self._ingest(target, checked, progress or Progress())
            status = "done"
            return results
        finally:
            close_uploads(uploads)
            self._count("sync", status)

    def _count(self, mode: str, status: str) -> None:
        if self._metrics is not None:
            self._metrics.ingest_jobs.labels(mode, status).inc()

    async def start_job(
        self, target: Target, uploads: Sequence[Upload], *, charge: bool = False
    ) -> IngestJob:
        """Check the uploads, then ingest them in the background. Closes the uploads."""
        try:
            checked = await self.check(uploads, charge_to=target.user_id if charge else None)
            job = await self.jobs.create(target.user_id, target.namespace, len(checked))
        except BaseException:
            close_uploads(uploads)
            raise
        task = asyncio.create_task(self._run_job(job.job_id, target, checked, uploads))
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.job_id, None))
        return job

    async def get_job(self, user_id: str, job_id: uuid.UUID) -> IngestJob | None:
        return await self.jobs.get_own(user_id, job_id)

    async def files(self, namespace: str, request: PageRequest) -> Page[dict[str, Any]]:
        """The files stored in a namespace (``filename``, ``content_type``, ``chunks``,
        ``created_at``), oldest first, a page at a time."""
        return await self.store.files(namespace, request)

    async def delete(self, namespace: str, metadata: dict[str, str] | None = None) -> int:
        """Delete a namespace's documents (only those whose metadata has these values)."""
        return await self.store.delete(namespace, metadata)

    async def shutdown(self) -> None:
        """Cancel running jobs (each is marked failed; nothing of it is stored)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._parser.shutdown(wait=False, cancel_futures=True)

    async def parse(self, item: CheckedFile) -> list[Chunk]:
        """Extract and split one file in the parse pool, within the time limit."""
        limits = parse_limits(self.settings).started()
        seconds = self.settings.ingest_parse_seconds
        future = self._parser.submit(chunk_file, item, self.settings, limits)
        try:
            # The parse itself stops at its deadline (checked between pages); the wait is a
            # little longer so that its own message wins when it does.
            async with asyncio.timeout(seconds + 1.0):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()
            raise FileRejected(item.upload.filename, 422, too_slow(seconds)) from None

    # -- pipeline -----------------------------------------------------------------------------

    async def _ingest(
        self, target: Target, checked: Sequence[CheckedFile], progress: Progress
    ) -> list[FileResult]:
        per_file: list[list[Chunk]] = []
        problems: list[FileRejected] = []
        for done, item in enumerate(checked, start=1):
            try:
                per_file.append(await self.parse(item))
            except FileRejected as exc:
                problems.append(exc)
            await progress.files(done)
        if problems:
            raise rejection(problems)

        results: list[FileResult] = []
        flat: list[Chunk] = []
        for chunks in per_file:
            for chunk in chunks:
                chunk.metadata.update(target.metadata)
        for item, chunks in zip(checked, per_file, strict=True):
            results.append(
                FileResult(item.upload.filename, MIME_TYPES[item.kind], len(chunks), ids=[])
            )
            flat.extend(chunks)
        ids = await self._store(target, flat, progress)
        start = 0
        for result in results:
            result.ids.extend(ids[start : start + result.chunks])
            start += result.chunks
        return results

    async def _store(
        self, target: Target, chunks: Sequence[Chunk], progress: Progress
    ) -> list[str]:
        total = len(chunks)
        window = EMBED_BATCH * EMBED_CONCURRENCY
        ids: list[str] = []
        batch = uuid.uuid4()
        await progress.chunks(0, total)
        try:
            for start in range(0, total, window):
                part = chunks[start : start + window]
                batches = [part[i : i + EMBED_BATCH] for i in range(0, len(part), EMBED_BATCH)]
                # No connection is held while the provider works.
                vectors = await asyncio.gather(
                    *(self.embedder.embed_documents([c.text for c in b]) for b in batches)
                )
                # Formatting a window of vectors as text takes a while: not on the event loop.
                rows = await asyncio.to_thread(_rows, batches, vectors)
                async with self._pool.connection() as conn:
                    await self.store.stage(conn, batch, rows)
                ids.extend(str(r.id) for r in rows)
                await progress.chunks(start + len(part), total)
            async with self._pool.connection() as conn, conn.transaction():
                await _lock_target(conn, target)
                await self.store.publish_staged(conn, batch, target.namespace)
        except BaseException:
            await asyncio.shield(self._discard(batch))
            raise
        return ids

    async def _discard(self, batch: uuid.UUID) -> None:
        try:
            async with self._pool.connection() as conn:
                await self.store.discard_staged(conn, batch)
        except Exception as exc:  # purged at the next start
            log.warning("could not delete the staged chunks of a failed ingest (%r)", exc)

    async def _run_job(
        self,
        job_id: uuid.UUID,
        target: Target,
        checked: Sequence[CheckedFile],
        uploads: Sequence[Upload],
    ) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job_id))
        status = "error"
        try:
            results = await self._ingest(target, checked, _JobProgress(self.jobs, job_id))
            await self.jobs.finish(job_id, [r.summary() for r in results])
            status = "done"
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(job_id, INTERRUPTED_MESSAGE))
            raise
        except LoomError as exc:
            await self._fail(job_id, exc.message)
        except Exception:
            log.exception("ingest job %s failed", job_id)
            await self._fail(job_id, INTERNAL_MESSAGE)
        finally:
            heartbeat.cancel()
            close_uploads(uploads)
            self._count("async", status)

    async def _fail(self, job_id: uuid.UUID, message: str) -> None:
        try:
            await self.jobs.fail(job_id, message)
        except Exception:
            log.exception("could not record the failure of ingest job %s", job_id)

    async def _heartbeat(self, job_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):
                await self.jobs.heartbeat(job_id)


def _rows(
    batches: Sequence[Sequence[Chunk]], vectors: Sequence[Sequence[list[float]]]
) -> list[ChunkRow]:
    return [
        ChunkRow(c.text, c.metadata, vector_literal(v), uuid.uuid4())
        for batch, batch_vectors in zip(batches, vectors, strict=True)
        for c, v in zip(batch, batch_vectors, strict=True)
    ]


async def _lock_target(conn: AsyncConnection[Row], target: Target) -> None:
    """Lock the target row until commit; it must still exist and belong to the caller.

    A collection has no core row: its protocol checked it and cleans up after a delete."""
    if target.kind == "collection":
        return
    if target.kind == "assistant":
        cur = await conn.execute(
            "SELECT 1 FROM assistant WHERE assistant_id = %s AND user_id = %s FOR KEY SHARE",
            (target.id, target.user_id),
        )
    else:
        cur = await conn.execute(
            "SELECT 1 FROM thread WHERE thread_id = %s AND user_id = %s FOR KEY SHARE",
            (target.id, target.user_id),
        )
    if await cur.fetchone() is None:
        raise NotFound(f"{target.kind.capitalize()} not found")
