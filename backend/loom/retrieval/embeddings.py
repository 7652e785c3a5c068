"""Embeddings from an OpenAI-compatible endpoint, through ``langchain_openai.OpenAIEmbeddings``.

The model is ``LOOM_EMBEDDING_MODEL`` at ``LOOM_EMBEDDING_BASE_URL`` (default: the OpenAI base
URL). Texts are sent as strings (``check_embedding_ctx_length=False``: no local tokenizer, so
any OpenAI-compatible server works). ``dimensions`` is only sent to models that accept it
(``text-embedding-3*``); every vector that comes back must have
``LOOM_EMBEDDING_DIMENSIONS`` components, which is what the vector index is built for.
Provider failures become :class:`~loom.errors.UpstreamError` with a safe message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx2
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from loom.errors import ServiceUnavailable, UpstreamError
from loom.providers import provider_error
from loom.settings import Settings

log = logging.getLogger("loom.retrieval")

# How many texts go into one embeddings request.
EMBED_BATCH = 64


class Embedder:
    """Turns texts into vectors of ``settings.embedding_dimensions`` components, sending its
    requests through ``http`` (the process's provider client, which its owner closes)."""

    def __init__(self, settings: Settings, http: httpx2.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http = http
        self.dimensions = settings.embedding_dimensions
        self._client: OpenAIEmbeddings | None = None

    def unavailable_reason(self) -> str | None:
        """Why nothing can be embedded with these settings, or ``None``."""
        if self.settings.openai_api_key is None and self.settings.embeddings_url is None:
            return "OPENAI_API_KEY (or LOOM_EMBEDDING_BASE_URL) is not set"
        return None

    def _get(self) -> OpenAIEmbeddings:
        if self._client is not None:
            return self._client
        reason = self.unavailable_reason()
        if reason is not None:
            raise ServiceUnavailable(f"Embeddings are not configured: {reason}")
        s = self.settings
        key = s.openai_api_key or SecretStr("not-needed")  # local servers need no key
        self._client = OpenAIEmbeddings(
            model=s.embedding_model,
            openai_api_base=s.embeddings_url,
            openai_api_key=key,
            dimensions=s.embedding_dimensions
            if s.embedding_model.startswith("text-embedding-3")
            else None,
            check_embedding_ctx_length=False,
            chunk_size=EMBED_BATCH,
            max_retries=s.model_max_retries,
            request_timeout=s.model_timeout_seconds,
            http_async_client=self._http,
        )
        return self._client

    def _checked(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        if len(vectors) != expected:
            raise UpstreamError(
                f"The embeddings provider returned {len(vectors)} vectors for {expected} texts"
            )
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise UpstreamError(
                    f"The embedding model returned {len(vector)}-dimensional vectors but "
                    f"LOOM_EMBEDDING_DIMENSIONS is {self.dimensions}"
                )
        return vectors

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        client = self._get()
        try:
            vectors = await client.aembed_documents(list(texts))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("embedding %d texts failed: %r", len(texts), exc)
            raise provider_error(exc, "embeddings provider") from exc
        return self._checked(vectors, len(texts))

    async def embed_query(self, text: str) -> list[float]:
        client = self._get()
        try:
            vector = await client.aembed_query(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("embedding a query failed: %r", exc)
            raise provider_error(exc, "embeddings provider") from exc
        return self._checked([vector], 1)[0]
