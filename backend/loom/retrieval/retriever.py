"""The run-aware retriever handed to the ``retrieval`` tool and the ``chat_retrieval`` graph.

One :class:`PgRetriever` is built when the app starts. Each call reads the config of the graph
run it is called from (``langgraph.config.get_config()``; the executor puts the run's
``assistant_id`` and ``thread_id`` in ``configurable``) and searches ``assistant:<assistant_id>``
and ``thread:<thread_id>``, plus the run's extra namespaces (``extra_namespaces``: those a
protocol named in ``RunRequest.namespaces`` after checking the caller owns them; the executor
takes them from the run's row, never from a client's config). Called outside a run there are
no namespaces and the answer is empty: a retriever can never be pointed at someone else's
documents by its caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from langgraph.config import get_config

from loom.retrieval.embeddings import Embedder
from loom.retrieval.store import VectorStore
from loom.storage.namespaces import Owner, is_namespace, namespace
from loom.tools.base import RetrievedChunk


def _namespace(kind: Owner, value: Any) -> str | None:
    if not value:
        return None
    try:
        return namespace(kind, uuid.UUID(str(value)))
    except ValueError:
        return None


def namespaces_of(config: Mapping[str, Any] | None) -> list[str]:
    """The namespaces a run with this config may search (assistant's, then thread's)."""
    configurable = (config or {}).get("configurable") or {}
    if not isinstance(configurable, Mapping):
        return []
    found = [
        _namespace("assistant", configurable.get("assistant_id")),
        _namespace("thread", configurable.get("thread_id")),
    ]
    extra = configurable.get("extra_namespaces") or []
    if isinstance(extra, list):
        found.extend(ns for ns in extra if is_namespace(ns))
    return list(dict.fromkeys(ns for ns in found if ns is not None))


def run_namespaces() -> list[str]:
    """The namespaces of the graph run this is called from; ``[]`` outside a run."""
    try:
        config = get_config()
    except RuntimeError:
        return []
    return namespaces_of(config)


class PgRetriever:
    """Top-``k`` chunks by cosine distance from the current run's namespaces."""

    def __init__(self, store: VectorStore, embedder: Embedder, k: int) -> None:
        self.store = store
        self.embedder = embedder
        self.k = k

    async def __call__(self, query: str) -> list[RetrievedChunk]:
        return await self.search(query, run_namespaces())

    async def search(
        self, query: str, namespaces: list[str], k: int | None = None
    ) -> list[RetrievedChunk]:
        """Search ``namespaces`` directly (callers must have checked the caller may)."""
        if not namespaces or not query.strip():
            return []
        # Skip the embeddings call when nothing was uploaded (the common case for most runs).
        if not await self.store.has_documents(namespaces):
            return []
        vector = await self.embedder.embed_query(query)
        return await self.store.search(namespaces, vector, k or self.k)
