"""Small HTTP helpers shared by the API-backed tools (Wikipedia, DDG, arXiv, PubMed, Tavily).

The base URLs of these APIs are operator settings, so they are trusted: no address checks here
(arbitrary, model-chosen URLs go through :mod:`loom.tools.safe_http` instead). Every client
ignores proxy environment variables (``trust_env=False``): settings are the only configuration.

Bodies are read with :func:`read_capped`, which caps the *decoded* size: the raw bytes are
read (at most about the cap) and decoded here, layer by layer for a ``Content-Encoding``
chain (``gzip``, ``deflate``, ``zstd``, nested or not), each layer asked for no more than the
cap. A small compressed body that would inflate to gigabytes (a decompression bomb) costs at
most the cap, never the inflated size. httpx's own decoding is bypassed (``aiter_raw``): it
inflates a whole received chunk at once, whatever it grows to.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

import httpx
import zstandard
from langchain_core.tools import ToolException

from loom.settings import Settings

USER_AGENT = "Loom/0.1 (self-hosted agent runtime; tools)"
# The encodings :func:`read_capped` decodes, and so the only ones Loom asks for.
ACCEPT_ENCODING = "gzip, deflate, zstd"
# zstd frames may ask for a window of up to this (RFC 9659's limit for HTTP): a bigger window
# is memory a frame header alone could make Loom allocate.
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
_READ = 64 * 1024  # bytes asked of a layer at a time
_RAW_SLACK = 64 * 1024  # raw bytes read past the cap of a compressed body


class _Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _Bytes:
    """The raw body as a readable source."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int, /) -> bytes:
        chunk = bytes(self._view[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


class _Zlib:
    """``gzip`` (members in a row) or ``deflate`` (zlib-wrapped, or raw as some servers send),
    never producing more than asked for per read."""

    def __init__(self, source: _Readable, encoding: str) -> None:
        self._source = source
        self._gzip = encoding != "deflate"
        self._wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        self._d = zlib.decompressobj(self._wbits)
        self._pending = b""  # input not yet given to the decompressor
        self._started = False
        self._done = False

    def read(self, n: int, /) -> bytes:
        while not self._done:
            if self._d.eof:
                rest = self._d.unused_data + self._pending
                if not self._gzip or not rest.strip(b"\x00"):
                    self._done = True
                    break
                self._d = zlib.decompressobj(self._wbits)  # the next gzip member
                self._pending = rest
            data = self._d.unconsumed_tail or self._pending
            self._pending = b""
            if not data:
                data = self._source.read(_READ)
                if not data:  # the input ends (perhaps cut at the raw cap)
                    self._done = True
                    return self._d.flush()
            try:
                out = self._d.decompress(data, n)
            except zlib.error:
                if self._gzip or self._started:
                    raise
                # ``deflate`` without the zlib wrapper
                self._wbits = -zlib.MAX_WBITS
                self._d = zlib.decompressobj(self._wbits)
                out = self._d.decompress(data, n)
            self._started = True
            if out:
                return out
        return b""


class _Zstd:
    def __init__(self, source: _Readable) -> None:
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        # zstandard reads from anything with ``read(n)``; its stubs ask for a real file.
        self._reader = decompressor.stream_reader(cast(IO[bytes], source), read_size=_READ)

    def read(self, n: int, /) -> bytes:
        return bytes(self._reader.read(n))


def content_encodings(headers: httpx.Headers) -> list[str]:
    """The codings applied to a body, in the order they were applied (``identity`` left out)."""
    found: list[str] = []
    for value in headers.get_list("content-encoding", split_commas=True):
        coding = value.strip().lower()
        if coding and coding != "identity":
            found.append(coding)
    return found


def _decoder(source: _Readable, coding: str) -> _Readable:
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Zlib(source, "deflate" if coding == "deflate" else "gzip")
    if coding == "zstd":
        return _Zstd(source)
    raise ToolException(f"the response uses an unsupported Content-Encoding: {coding}")


def decode_capped(raw: bytes, codings: list[str], limit: int) -> tuple[bytes, bool]:
    """Decode ``raw`` (``codings`` in the order applied) up to ``limit`` decoded bytes."""
    source: _Readable = _Bytes(raw)
    for coding in reversed(codings):
        source = _decoder(source, coding)
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = source.read(min(_READ, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (zlib.error, zstandard.ZstdError) as exc:
        shown = ", ".join(codings)
        raise ToolException(f"the response body could not be decoded ({shown}): {exc}") from None
    body = b"".join(chunks)
    return body[:limit], size > limit


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read a streamed response body up to ``limit`` *decoded* bytes: ``(body, truncated)``.

    Stops reading (and closes the stream) as soon as the cap is passed, so a huge, endless or
    highly compressed body costs at most about ``limit`` raw bytes plus ``limit`` decoded ones.
    """
    codings = content_encodings(response.headers)
    raw_limit = limit + _RAW_SLACK if codings else limit
    chunks: list[bytes] = []
    size = 0
    cut = False
    try:
        async for chunk in response.aiter_raw():
            remaining = raw_limit - size
            if len(chunk) > remaining:
                chunks.append(chunk[:remaining])
                cut = True
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        await response.aclose()
    raw = b"".join(chunks)
    if not codings:
        return raw, cut
    body, over = decode_capped(raw, codings, limit)
    return body, over or (cut and len(body) >= limit)


def api_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the tool timeout, Loom's User-Agent and no env proxies."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
    headers.update(kwargs.pop("headers", {}))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.tool_timeout_seconds),
        trust_env=False,
        follow_redirects=True,
        headers=headers,
        **kwargs,
    )


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
