"""Retrieval: ingest uploaded files into pgvector and search them from runs.

* :mod:`loom.retrieval.loaders` -- identify uploads by content, extract their text.
* :mod:`loom.retrieval.embeddings` -- the OpenAI-compatible embeddings client.
* :mod:`loom.retrieval.store` -- the ``document`` table: HNSW index, bulk writes, search.
* :mod:`loom.retrieval.ingest` -- the all-or-nothing ingest pipeline and background jobs.
* :mod:`loom.retrieval.jobs` -- the ``ingest_job`` progress records.
* :mod:`loom.retrieval.retriever` -- the run-aware retriever the agents use.

:func:`open_retrieval` builds all of it once, in the app's lifespan.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx2

from loom.db.types import Pool
from loom.limits import IngestQuota
from loom.metrics import Metrics
from loom.retrieval.embeddings import Embedder
from loom.retrieval.ingest import FileResult, IngestService, Target
from loom.retrieval.jobs import IngestJob
from loom.retrieval.loaders import FileRejected, Upload
from loom.retrieval.retriever import PgRetriever, namespaces_of, run_namespaces
from loom.retrieval.store import VectorStore
from loom.settings import Settings

__all__ = [
    "Embedder",
    "FileRejected",
    "FileResult",
    "IngestJob",
    "IngestService",
    "PgRetriever",
    "Target",
    "Upload",
    "VectorStore",
    "namespaces_of",
    "open_retrieval",
    "run_namespaces",
]


async def open_retrieval(
    settings: Settings,
    pool: Pool,
    stack: AsyncExitStack,
    metrics: Metrics | None = None,
    http: httpx2.AsyncClient | None = None,
) -> tuple[PgRetriever, IngestService]:
    """Create the vector index if needed; build the retriever and the ingest service (their
    embeddings requests go through ``http``).

    ``stack`` cancels this process's running ingest jobs on shutdown.
    """
    embedder = Embedder(settings, http)
    store = VectorStore(pool, settings.embedding_dimensions)
    await store.ensure_index()
    quota = IngestQuota(pool, settings.ingest_bytes_per_day)
    service = IngestService(pool, settings, embedder, store, metrics, quota)
    await service.jobs.purge()
    await store.purge_staged()
    stack.push_async_callback(service.shutdown)
    return PgRetriever(store, embedder, settings.retrieval_k), service
