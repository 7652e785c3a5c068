"""Turning failures of upstream providers (chat models, embeddings) into safe Loom errors."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import httpx
import httpx2
import openai

from loom.errors import LoomError, UpstreamError, UpstreamTimeout
from loom.settings import Settings


def open_provider_http(settings: Settings, stack: AsyncExitStack) -> httpx2.AsyncClient:
    """The connection pool of this process's chat model and embeddings requests (the
    ``openai`` client's own defaults), closed with ``stack``: a shutdown leaves no connection
    to a provider open. (Without it, ``langchain-openai`` would share a client cached for the
    whole Python process, whose connections nothing ever closes.)"""
    client = openai.DefaultAsyncHttpxClient(timeout=settings.model_timeout_seconds)
    stack.push_async_callback(client.aclose)
    return client


def provider_error(exc: BaseException, provider: str = "model provider") -> LoomError:
    """A client-safe error for ``exc`` raised while talking to ``provider``."""
    if isinstance(exc, LoomError):
        return exc
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | asyncio.TimeoutError):
        return UpstreamTimeout(f"The {provider} did not answer in time")
    if isinstance(exc, openai.RateLimitError):
        return UpstreamError(f"The {provider} is rate limiting requests; try again shortly")
    if isinstance(exc, openai.AuthenticationError):
        return UpstreamError(f"The {provider} rejected Loom's credentials")
    if isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"The {provider} answered with HTTP {exc.status_code}")
    if isinstance(exc, openai.APIConnectionError | httpx.HTTPError):
        return UpstreamError(f"The connection to the {provider} failed")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return UpstreamError(f"The {provider} sent a malformed response")
    return UpstreamError(f"The {provider} failed to answer")
