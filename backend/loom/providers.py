"""Turning failures of upstream providers (chat models, embeddings) into safe Loom errors."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai

from loom.errors import LoomError, UpstreamError, UpstreamTimeout


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
