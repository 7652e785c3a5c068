"""Small HTTP helpers shared by the API-backed tools (Wikipedia, DDG, arXiv, PubMed, Tavily).

The base URLs of these APIs are operator settings, so they are trusted: no address checks here
(arbitrary, model-chosen URLs go through :mod:`loom.tools.safe_http` instead). Every client
ignores proxy environment variables (``trust_env=False``): settings are the only configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.tools import ToolException

from loom.settings import Settings

USER_AGENT = "Loom/0.1 (self-hosted agent runtime; tools)"


def api_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the tool timeout, Loom's User-Agent and no env proxies."""
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.tool_timeout_seconds),
        trust_env=False,
        follow_redirects=True,
        headers=headers,
        **kwargs,
    )


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read a streamed response body up to ``limit`` bytes; returns ``(body, truncated)``.

    Stops reading (and closes the stream) as soon as the cap is passed, so a huge or endless
    body costs at most ``limit`` bytes plus one chunk.
    """
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.aiter_bytes():
        remaining = limit - size
        if len(chunk) > remaining:
            chunks.append(chunk[:remaining])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    await response.aclose()
    return b"".join(chunks), truncated


@dataclass(frozen=True)
class ApiResponse:
    """A fully read API answer."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def api_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    limit: int,
    **kwargs: Any,
) -> ApiResponse:
    """Send a request to an API, raise for HTTP errors, and read at most ``limit`` bytes.

    A body larger than ``limit`` is an error: a truncated JSON or XML document is useless.
    """
    request = client.build_request(method, url, **kwargs)
    response = await client.send(request, stream=True)
    try:
        response.raise_for_status()
        body, truncated = await read_capped(response, limit)
    finally:
        await response.aclose()
    if truncated:
        raise ToolException(f"{service}: the answer was larger than {limit} bytes")
    return ApiResponse(
        status_code=response.status_code,
        headers=response.headers,
        content=body,
        encoding=response.charset_encoding or "utf-8",
    )
