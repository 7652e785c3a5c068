"""A local fake of the OpenAI HTTP API for tests and benchmarks.

The real ``openai`` / ``langchain_openai`` clients talk to it over HTTP, so the whole client stack
(streaming, SSE parsing, tool-call accumulation, retries, error mapping) is exercised.

The server is a small hand-written HTTP/1.1 server on plain ``asyncio`` (no framework): per-request
overhead is tiny and faults such as "stall" or "cut the connection mid-stream" can be injected
precisely.

Endpoints (under ``/v1``):

* ``POST /v1/chat/completions`` -- streaming (SSE) and non-streaming; text one token per chunk,
  tool calls streamed like OpenAI does, ``stream_options.include_usage`` honoured.
* ``POST /v1/embeddings`` -- deterministic hashed bag-of-words vectors; ``float`` or ``base64``
  encoding (the ``openai`` client asks for base64 unless told otherwise).
* ``GET /v1/models`` and ``GET /v1/models/{id}``.

In-process use::

    with FakeOpenAI() as fake:
        fake.reply(text="Hi there!")
        llm = ChatOpenAI(base_url=fake.base_url, api_key="test", model="gpt-4o-mini")

Command line (for benchmarks)::

    python -m tests.fakes.openai_server --port 8299 --tokens 50 --delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import http
import json
import logging
import math
import os
import re
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

try:  # orjson ships with langsmith; it is much faster for 1536-float embedding payloads.
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - fallback

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


__all__ = [
    "FakeOpenAI",
    "FaultKind",
    "Reply",
    "Rule",
    "ToolCall",
    "embed_text",
    "main",
    "tokenize",
]

log = logging.getLogger(__name__)

FaultKind = Literal["stall", "cut", "bad_json"]
_FAULT_KINDS = ("stall", "cut", "bad_json")

DEFAULT_TEXT = "Hello from the fake model."
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

# ---------------------------------------------------------------------------------------------
# Tokenisation and embeddings
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_WORD_RE = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens with leading whitespace attached; ``"".join(result) == text``."""
    return _TOKEN_RE.findall(text)


@functools.lru_cache(maxsize=65536)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def _embed_words(words: Iterable[str], dims: int) -> list[float]:
    acc: dict[int, float] = {}
    for word in words:
        h = _word_hash(word)
        idx = h % dims
        acc[idx] = acc.get(idx, 0.0) + (1.0 if (h >> 63) & 1 else -1.0)
    vec = [0.0] * dims
    norm = math.sqrt(sum(v * v for v in acc.values()))
    if norm == 0.0:
        # Empty input (or perfectly cancelling collisions): a fixed unit vector, never all-zero,
        # because a zero vector makes cosine distance NaN (e.g. in pgvector).
        vec[0] = 1.0
        return vec
    for idx, v in acc.items():
        vec[idx] = v / norm
    return vec


def embed_text(text: str, dims: int = 1536) -> list[float]:
    """Deterministic L2-normalised hashed bag of lower-cased words (what the fake returns)."""
    return _embed_words(_WORD_RE.findall(text.lower()), dims)


def _embed_token_ids(token_ids: Sequence[int], dims: int) -> list[float]:
    # Token-id input (langchain's check_embedding_ctx_length=True path).  There is no tokenizer
    # here, so each id is treated as an opaque word: deterministic, but not comparable with the
    # vectors of plain-text inputs.
    return _embed_words((f"#{t}" for t in token_ids), dims)


# ---------------------------------------------------------------------------------------------
# Scripting objects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A tool call the fake model makes.  ``args`` may be a dict (JSON-encoded) or a raw string
    (sent verbatim, e.g. to test invalid JSON).  ``id`` defaults to a fresh ``call_...``."""

    name: str
    args: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments(self) -> str:
        if isinstance(self.args, str):
            return self.args
        return json.dumps(self.args, separators=(",", ":"), ensure_ascii=False)


def _split_args(arguments: str, size: int = 12) -> list[str]:
    if not arguments:
        return []
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


@dataclass
class _HttpError:
    status: int
    retry_after: float | None
    message: str
    type: str
    code: str | None


class Reply:
    """One scripted model response (or error / fault).  Returned by ``FakeOpenAI.reply`` & co.

    ``requests`` collects the chat request bodies this reply was served for.
    """

    def __init__(
        self,
        *,
        text: str = "",
        tokens: Sequence[str] | None = None,
        tool_calls: Sequence[ToolCall] = (),
        token_delay: float | None = None,
        fault: FaultKind | None = None,
        after_tokens: int = 0,
        error: _HttpError | None = None,
        track_requests: bool = True,
    ) -> None:
        if tokens is not None:
            tokens = list(tokens)
            joined = "".join(tokens)
            if text and text != joined:
                raise ValueError("text and tokens disagree: ''.join(tokens) must equal text")
            text = joined
        else:
            tokens = tokenize(text)
        if fault is not None and fault not in _FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {_FAULT_KINDS}")
        if after_tokens < 0:
            raise ValueError("after_tokens must be >= 0")
        self.text = text
        self.tokens: list[str] = tokens
        self.tool_calls: list[ToolCall] = list(tool_calls)
        self.token_delay = token_delay
        self.fault: FaultKind | None = fault
        self.after_tokens = after_tokens
        self.error = error
        self.requests: list[dict[str, Any]] = []
        self._track = track_requests
        # Pre-encoded JSON of the content deltas: the first one also carries the role.
        self._content_deltas: list[bytes] = [
            _dumps({"role": "assistant", "content": tok} if i == 0 else {"content": tok})
            for i, tok in enumerate(tokens)
        ]
        self.finish_reason = "tool_calls" if self.tool_calls else "stop"

    def __repr__(self) -> str:
        kind = f"error={self.error.status}" if self.error else f"text={self.text!r}"
        extra = f", tool_calls={[t.name for t in self.tool_calls]}" if self.tool_calls else ""
        fault = f", fault={self.fault}@{self.after_tokens}" if self.fault else ""
        return f"Reply({kind}{extra}{fault})"

    # -- wire helpers --------------------------------------------------------------------------

    def _call_ids(self) -> list[str]:
        return [tc.id or f"call_{os.urandom(12).hex()}" for tc in self.tool_calls]

    def _deltas(self, call_ids: list[str]) -> list[bytes]:
        """All delta objects (JSON bytes) of a streamed response, one per "token"."""
        deltas = list(self._content_deltas)
        for i, (tc, call_id) in enumerate(zip(self.tool_calls, call_ids, strict=True)):
            head: dict[str, Any] = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tc.name, "arguments": ""},
                    }
                ]
            }
            if not deltas:
                head = {"role": "assistant", "content": None, **head}
            deltas.append(_dumps(head))
            for frag in _split_args(tc.arguments):
                deltas.append(
                    _dumps({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})
                )
        if not deltas:  # empty reply: still announce the role
            deltas.append(b'{"role":"assistant","content":""}')
        return deltas

    def _message(self, call_ids: list[str]) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": self.text if (self.text or not self.tool_calls) else None,
            "refusal": None,
        }
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments},
                }
                for tc, call_id in zip(self.tool_calls, call_ids, strict=True)
            ]
        return msg

    def _completion_tokens(self) -> int:
        return len(self.tokens) + sum(1 + len(_split_args(tc.arguments)) for tc in self.tool_calls)


@dataclass
class Rule:
    """``FakeOpenAI.when`` rule: serves ``reply`` whenever the last user message contains
    ``contains`` (case-insensitive).  ``after_tool``: None = always; True = only when the last
    message of the request is a tool result; False = only when it is not.  ``times``: expire
    after that many uses (None = never).  ``hits`` counts uses."""

    contains: str
    reply: Reply
    times: int | None = None
    after_tool: bool | None = None
    hits: int = 0

    def matches(self, last_user_text: str, last_is_tool: bool) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.after_tool is not None and self.after_tool != last_is_tool:
            return False
        return self.contains.lower() in last_user_text.lower()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _inspect_messages(body: dict[str, Any]) -> tuple[str, bool]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "", False
    last = messages[-1]
    last_is_tool = isinstance(last, dict) and last.get("role") in ("tool", "function")
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content")), last_is_tool
    return "", last_is_tool


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------

_SSE_DONE = b"data: [DONE]\n\n"
_CHUNKED_END = b"0\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)


def _http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _sse(payload: bytes) -> bytes:
    return _http_chunk(b"data: " + payload + b"\n\n")


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class _BadRequest(Exception):
    pass


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers until an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError as exc:
        raise _BadRequest("invalid content-length") from exc
    return await reader.readexactly(n) if n > 0 else b""


async def _wait_for_disconnect(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class FakeOpenAI:
    """Fake OpenAI API server.  See the module docstring."""

    def __init__(
        self,
        default_text: str = DEFAULT_TEXT,
        token_delay: float = 0.0,
        dims: int = 1536,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.dims = dims
        self.record_requests = record_requests
        self._initial_default = (default_text, token_delay)
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._embedding_errors: deque[Reply] = deque()
        self._embed_gate: threading.Event | None = None
        self.embeddings_waiting = 0  # embeddings requests held by hold_embeddings()
        self._rules: list[Rule] = []
        self._requests: list[tuple[str, dict[str, Any]]] = []
        self._default_delay = token_delay
        self._default = Reply(text=default_text, track_requests=False)
        self._models_body = _dumps(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "loom-fake"}
                    for m in MODELS
                ],
            }
        )
        # server state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` -- pass as ``base_url`` to the OpenAI / langchain clients."""
        if not self.port:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        """Serve in a background thread (own event loop).  Returns self."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI already started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("FakeOpenAI did not start in time")
        if errors:
            self._thread.join()
            self._thread = self._loop = None
            loop.close()
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop the background server (drops open connections).  Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=1 << 20, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._conns)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- scripting -----------------------------------------------------------------------------

    def set_default(self, text: str | None = None, token_delay: float | None = None) -> None:
        """Change the reply used when nothing scripted applies, and/or the default token delay."""
        with self._lock:
            if text is not None:
                self._default = Reply(text=text, track_requests=False)
            if token_delay is not None:
                self._default_delay = token_delay

    def _build(
        self,
        text: str | None,
        tool_calls: Sequence[ToolCall] | None,
        token_delay: float | None,
        tokens: Sequence[str] | None,
        fault: FaultKind | None = None,
        after_tokens: int = 0,
    ) -> Reply:
        if text is None and tokens is None:
            text = "" if tool_calls else self._default.text
        return Reply(
            text=text or "",
            tokens=tokens,
            tool_calls=tool_calls or (),
            token_delay=token_delay,
            fault=fault,
            after_tokens=after_tokens,
        )

    def _enqueue(self, reply: Reply) -> Reply:
        with self._lock:
            self._queue.append(reply)
        return reply

    def reply(
        self,
        text: str | None = None,
        tool_calls: Sequence[ToolCall] | None = None,
        token_delay: float | None = None,
        tokens: Sequence[str] | None = None,
    ) -> Reply:
        """Queue one scripted chat reply (FIFO).  ``text`` defaults to the default text, or to ""
        when ``tool_calls`` are given.  ``tokens`` gives the exact token split (joined = text)."""
        return self._enqueue(self._build(text, tool_calls, token_delay, tokens))

    def fail(
        self,
        status: int = 500,
        retry_after: float | None = None,
        *,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        endpoint: Literal["chat", "embeddings"] = "chat",
    ) -> Reply:
        """Queue one HTTP error response with an OpenAI error JSON body.

        ``retry_after`` (seconds) is sent as ``retry-after`` and ``retry-after-ms``.  The openai
        client ignores a zero delay (falls back to ~0.5 s exponential backoff), so
        ``retry_after=0`` is sent as ``retry-after-ms: 1`` -- i.e. "retry right away".
        ``endpoint="embeddings"`` queues it for the next embeddings request instead.
        """
        if error_type is None:
            error_type = {
                400: "invalid_request_error",
                401: "authentication_error",
                403: "permission_error",
                404: "not_found_error",
                429: "rate_limit_error",
            }.get(status, "server_error" if status >= 500 else "invalid_request_error")
        err = _HttpError(
            status=status,
            retry_after=retry_after,
            message=message or f"Fake OpenAI error {status}",
            type=error_type,
            code=code if code is not None else ("rate_limit_exceeded" if status == 429 else None),
        )
        reply = Reply(error=err)
        if endpoint == "embeddings":
            with self._lock:
                self._embedding_errors.append(reply)
            return reply
        return self._enqueue(reply)

    def fault(
        self,
        kind: FaultKind,
        after_tokens: int = 0,
        *,
        text: str | None = None,
        tool_calls: Sequence[ToolCall] | None = None,
        token_delay: float | None = None,
        tokens: Sequence[str] | None = None,
    ) -> Reply:
        """Queue one faulty chat reply (text defaults to the default text).  After
        ``after_tokens`` token chunks (text tokens and tool-call fragments each count one):

        * ``"stall"``: send nothing more, keep the connection open until the client leaves;
        * ``"cut"``: close the connection mid-stream (no terminating chunk, no ``[DONE]``);
        * ``"bad_json"``: send a malformed ``data:`` line, then ``[DONE]``.

        Non-streaming requests: stall = never answer; cut = close without a response;
        bad_json = a 200 response with a truncated JSON body.
        """
        return self._enqueue(
            self._build(
                text, tool_calls, token_delay, tokens, fault=kind, after_tokens=after_tokens
            )
        )

    def when(
        self,
        contains: str,
        text: str | None = None,
        tool_calls: Sequence[ToolCall] | None = None,
        token_delay: float | None = None,
        tokens: Sequence[str] | None = None,
        *,
        times: int | None = None,
        after_tool: bool | None = None,
    ) -> Rule:
        """Add a rule: whenever the last *user* message contains ``contains`` (case-insensitive),
        serve this reply.  Rules are checked (in order added) before the FIFO queue and persist
        until ``reset()`` (or ``times`` uses).

        Beware tool loops: after the tool runs, the last user message is unchanged, so a rule
        with ``tool_calls`` would match again.  Use ``after_tool=False`` on it (and maybe a
        second rule with ``after_tool=True`` for the final answer), or ``times=1``.
        """
        rule = Rule(
            contains=contains,
            reply=self._build(text, tool_calls, token_delay, tokens),
            times=times,
            after_tool=after_tool,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def hold_embeddings(self) -> threading.Event:
        """Make embeddings requests wait until the returned event is set (or ``reset()``)."""
        gate = threading.Event()
        with self._lock:
            self._embed_gate = gate
        return gate

    @property
    def open_connections(self) -> int:
        """How many client connections are open now (a kept-alive one counts until the
        client closes it)."""
        return len(self._conns)

    def reset(self) -> None:
        """Forget queued replies, rules, recorded requests and default changes."""
        text, delay = self._initial_default
        with self._lock:
            if self._embed_gate is not None:
                self._embed_gate.set()
                self._embed_gate = None
            self._queue.clear()
            self._embedding_errors.clear()
            self._rules.clear()
            self._requests.clear()
            self._default = Reply(text=text, track_requests=False)
            self._default_delay = delay

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Received request bodies (chat + embeddings), in order (a snapshot copy)."""
        with self._lock:
            return [body for _, body in self._requests]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for kind, body in self._requests if kind == "chat"]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for kind, body in self._requests if kind == "embeddings"]

    @property
    def pending(self) -> int:
        """Number of queued (not yet served) chat replies."""
        with self._lock:
            return len(self._queue)

    def _select_chat_reply(self, body: dict[str, Any]) -> tuple[Reply, float]:
        with self._lock:
            if self.record_requests:
                self._requests.append(("chat", body))
            reply: Reply | None = None
            if self._rules:
                last_user, last_is_tool = _inspect_messages(body)
                for rule in self._rules:
                    if rule.matches(last_user, last_is_tool):
                        rule.hits += 1
                        reply = rule.reply
                        break
            if reply is None:
                reply = self._queue.popleft() if self._queue else self._default
            if reply._track:
                reply.requests.append(body)
            delay = reply.token_delay if reply.token_delay is not None else self._default_delay
            return reply, delay

    # -- connection handling -------------------------------------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            keep_alive = True
            while keep_alive:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].split(b"\r\n")
                try:
                    method, target, version = lines[0].decode("latin-1").split(" ", 2)
                except ValueError:
                    await self._send_json(
                        writer, 400, _error_body("bad request line", "invalid_request_error"), False
                    )
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
                        "latin-1"
                    )
                conn = headers.get("connection", "").lower()
                keep_alive = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    raw = await _read_body(reader, headers)
                except _BadRequest as exc:
                    await self._send_json(
                        writer, 400, _error_body(str(exc), "invalid_request_error"), False
                    )
                    return
                path = target.split("?", 1)[0].rstrip("/")
                keep_alive = await self._dispatch(method, path, raw, reader, writer, keep_alive)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Server shutdown.  Swallowed on purpose: on Python 3.11 a cancelled connection task
            # makes asyncio's StreamReaderProtocol callback print a spurious traceback.
            pass
        except Exception:
            log.exception("fake openai: error while handling a request")
        finally:
            if task is not None:
                self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        obj: Any,
        keep_alive: bool,
        extra_headers: str = "",
    ) -> None:
        body = obj if isinstance(obj, bytes) else _dumps(obj)
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\n"
            f"content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"{extra_headers}"
            f"{'' if keep_alive else 'connection: close' + chr(13) + chr(10)}"
            f"\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()

    async def _dispatch(
        self,
        method: str,
        path: str,
        raw: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        if path.startswith("/_control/") and method == "POST":
            return await self._control(path[len("/_control/") :], raw, writer, keep_alive)
        if path.startswith("/v1/"):
            path = path[3:]
        if method == "GET" and path == "/models":
            await self._send_json(writer, 200, self._models_body, keep_alive)
            return keep_alive
        if method == "GET" and path.startswith("/models/"):
            model = path[len("/models/") :]
            obj = {"id": model, "object": "model", "created": 1700000000, "owned_by": "loom-fake"}
            await self._send_json(writer, 200, obj, keep_alive)
            return keep_alive
        if method == "POST" and path in ("/chat/completions", "/embeddings"):
            try:
                body = _loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as exc:
                err = _error_body(f"invalid JSON body: {exc}", "invalid_request_error")
                await self._send_json(writer, 400, err, keep_alive)
                return keep_alive
            if path == "/embeddings":
                return await self._embeddings(body, writer, keep_alive)
            return await self._chat(body, len(raw), reader, writer, keep_alive)
        err = _error_body(f"Unknown route {method} {path}", "invalid_request_error", "not_found")
        await self._send_json(writer, 404, err, keep_alive)
        return keep_alive

    async def _control(
        self, verb: str, raw: bytes, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        """Script the fake over HTTP (for tests in another process, e.g. the browser tests).

        ``POST /_control/reply``, ``/_control/when``, ``/_control/fail`` and ``/_control/fault``
        take the keyword arguments of :meth:`reply` / :meth:`when` / :meth:`fail` /
        :meth:`fault` as JSON (``tool_calls`` as ``[{"name", "args"}]``);
        ``/_control/reset`` clears everything; ``/_control/requests`` answers the chat
        requests received so far.
        """
        try:
            body = _loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            calls = [ToolCall(**c) for c in body.pop("tool_calls", None) or []]
            if verb == "reply":
                self.reply(tool_calls=calls or None, **body)
            elif verb == "when":
                self.when(tool_calls=calls or None, **body)
            elif verb == "fail":
                self.fail(**body)
            elif verb == "fault":
                self.fault(tool_calls=calls or None, **body)
            elif verb == "reset":
                self.reset()
            elif verb == "requests":
                await self._send_json(writer, 200, {"requests": self.chat_requests}, keep_alive)
                return keep_alive
            else:
                raise ValueError(f"unknown control verb {verb!r}")
        except (ValueError, TypeError) as exc:
            await self._send_json(writer, 400, {"error": str(exc)}, keep_alive)
            return keep_alive
        await self._send_json(writer, 200, {"ok": True}, keep_alive)
        return keep_alive

    async def _send_error(
        self, writer: asyncio.StreamWriter, err: _HttpError, keep_alive: bool
    ) -> None:
        extra = ""
        if err.retry_after is not None:
            ms = max(1, round(err.retry_after * 1000))
            extra = f"retry-after: {math.ceil(err.retry_after)}\r\nretry-after-ms: {ms}\r\n"
        await self._send_json(
            writer, err.status, _error_body(err.message, err.type, err.code), keep_alive, extra
        )

    # -- chat completions ----------------------------------------------------------------------

    async def _chat(
        self,
        body: dict[str, Any],
        raw_len: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        reply, delay = self._select_chat_reply(body)
        if reply.error is not None:
            await self._send_error(writer, reply.error, keep_alive)
            return keep_alive
        model_field = body.get("model")
        model = model_field if isinstance(model_field, str) else DEFAULT_MODEL
        completion_tokens = reply._completion_tokens()
        prompt_tokens = max(1, raw_len // 4)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        cid = "chatcmpl-" + os.urandom(12).hex()
        created = int(time.time())
        call_ids = reply._call_ids()
        if not body.get("stream"):
            return await self._chat_once(
                reply, delay, model, usage, cid, created, call_ids, reader, writer, keep_alive
            )

        head_json = b'{"id":"%s","object":"chat.completion.chunk","created":%d,"model":%b,' % (
            cid.encode(),
            created,
            _dumps(model),
        )
        pre = head_json + b'"choices":[{"index":0,"delta":'
        frames = [_sse(pre + d + b',"finish_reason":null}]}') for d in reply._deltas(call_ids)]
        tail = _sse(pre + b'{},"finish_reason":"%s"}]}' % reply.finish_reason.encode())
        stream_options = body.get("stream_options")
        if isinstance(stream_options, dict) and stream_options.get("include_usage"):
            tail += _sse(head_json + b'"choices":[],"usage":' + _dumps(usage) + b"}")
        tail += _http_chunk(_SSE_DONE) + _CHUNKED_END

        fault_at = reply.after_tokens if reply.fault else None
        if fault_at is not None and fault_at < len(frames):
            frames = frames[:fault_at]
        writer.write(_SSE_HEAD)
        if delay > 0:
            await writer.drain()
            for frame in frames:
                await asyncio.sleep(delay)
                if writer.transport.is_closing():
                    return False
                writer.write(frame)
                await writer.drain()
        else:
            writer.write(b"".join(frames))
            await writer.drain()

        if reply.fault == "stall":
            await _wait_for_disconnect(reader)
            return False
        if reply.fault == "cut":
            return False  # the caller closes the socket without the terminating chunk
        if reply.fault == "bad_json":
            writer.write(_sse(b'{"id":"' + cid.encode() + b'","object":"chat.completion.ch'))
            writer.write(_http_chunk(_SSE_DONE) + _CHUNKED_END)
            await writer.drain()
            return keep_alive
        writer.write(tail)
        await writer.drain()
        return keep_alive

    async def _chat_once(
        self,
        reply: Reply,
        delay: float,
        model: str,
        usage: dict[str, int],
        cid: str,
        created: int,
        call_ids: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        if reply.fault == "stall":
            await _wait_for_disconnect(reader)
            return False
        if delay > 0:
            n = reply.after_tokens if reply.fault else usage["completion_tokens"]
            await asyncio.sleep(delay * n)
        if reply.fault == "cut":
            return False
        if reply.fault == "bad_json":
            bad = b'{"id":"' + cid.encode() + b'","object":"chat.comp'
            await self._send_json(writer, 200, bad, keep_alive)
            return keep_alive
        obj = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": reply._message(call_ids),
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage,
        }
        await self._send_json(writer, 200, obj, keep_alive)
        return keep_alive

    # -- embeddings ----------------------------------------------------------------------------

    async def _embeddings(
        self, body: dict[str, Any], writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        with self._lock:
            if self.record_requests:
                self._requests.append(("embeddings", body))
            err_reply = self._embedding_errors.popleft() if self._embedding_errors else None
            gate = self._embed_gate
        if gate is not None and not gate.is_set():
            with self._lock:
                self.embeddings_waiting += 1
            try:
                await asyncio.to_thread(gate.wait)
            finally:
                with self._lock:
                    self.embeddings_waiting -= 1
        if err_reply is not None and err_reply.error is not None:
            await self._send_error(writer, err_reply.error, keep_alive)
            return keep_alive

        dims = body.get("dimensions")
        if not isinstance(dims, int) or dims <= 0:
            dims = self.dims
        inp = body.get("input")
        items: list[str | list[int]]
        if isinstance(inp, str):
            items = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            items = [inp]  # a single token-id list
        elif isinstance(inp, list) and inp and all(isinstance(x, str | list) for x in inp):
            items = inp
        else:
            err = _error_body(
                "'input' must be a string, a list of strings or a list of token-id lists",
                "invalid_request_error",
            )
            await self._send_json(writer, 400, err, keep_alive)
            return keep_alive

        as_b64 = body.get("encoding_format") == "base64"
        pack = struct.Struct(f"<{dims}f").pack
        data = []
        n_tokens = 0
        for i, item in enumerate(items):
            if isinstance(item, str):
                vec = embed_text(item, dims)
                n_tokens += max(1, len(tokenize(item)))
            else:
                vec = _embed_token_ids(item, dims)
                n_tokens += max(1, len(item))
            emb: Any = base64.b64encode(pack(*vec)).decode("ascii") if as_b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        obj = {
            "object": "list",
            "data": data,
            "model": body.get("model") or DEFAULT_EMBEDDING_MODEL,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }
        await self._send_json(writer, 200, obj, keep_alive)
        return keep_alive


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def numbered_text(tokens: int) -> str:
    """The reply ``--tokens N`` serves: ``"tok0 tok1 ..."``, exactly N tokens."""
    return " ".join(f"tok{i}" for i in range(tokens))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openai_server", description="Fake OpenAI API server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8299, help="0 = pick a free port")
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help='default reply = exactly N tokens "tok0 tok1 ..." (else --text)',
    )
    parser.add_argument("--text", default=DEFAULT_TEXT, help="default reply text")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="per-token delay")
    parser.add_argument("--dims", type=int, default=1536, help="default embedding dimensions")
    args = parser.parse_args(argv)

    text = args.text
    if args.tokens is not None:
        text = numbered_text(args.tokens)
    fake = FakeOpenAI(
        default_text=text,
        token_delay=args.delay_ms / 1000.0,
        dims=args.dims,
        host=args.host,
        port=args.port,
        record_requests=False,  # don't grow memory during long benchmark runs
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        await fake._start_server()
        print(f"ready {fake.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake._shutdown()

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(run())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
