"""Run event logs in Redis Streams: any Loom process serves any run's stream.

Each run's log is one stream, ``loom:run:<id>``. An entry holds a batch of events and its id
is ``0-<seq of the batch's last event>``, so ids grow with the run's sequence numbers and a
reader resumes with ``XREAD`` from ``0-<last seq seen>``. Publishing is batched: the first
event after a quiet spell, a message's first token and the end go out at once, the rest at
most every ``flush_interval`` (50 ms), in one ``XADD`` (the stream is capped at
``max_entries``). A log expires ``ttl_after_end``
seconds after its ``end`` (and, as a safety net, ``ttl_idle`` after its last write).

Runs executing in this process are also followed from memory (:class:`LocalLogs`), so the
common one-process case never waits on Redis. If Redis is unreachable, publishers keep their
batches (up to a bound) and retry: the run itself never fails for it, and its outcome is in
Postgres regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from loom.runs.broker import LocalLogs
from loom.runs.events import (
    EndEvent,
    Envelope,
    ErrorEvent,
    MessageUpsert,
    RunEvent,
    dump_batch,
    load_batch,
)

log = logging.getLogger("loom.runs.redis")

_FIELD = b"b"

# Append a batch only while this publisher owns the run's log: a newer attempt (in any
# process) takes the log over by writing its own token to the owner key, and a stale
# attempt's writes are refused from then on. A log whose owner key is gone (Redis restarted)
# is taken by the first writer.
_APPEND = """
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
if not owner then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[2], 'b', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


def stream_key(prefix: str, run_id: str) -> str:
    return f"{prefix}run:{run_id}"


def owner_key(prefix: str, run_id: str) -> str:
    return f"{prefix}run:{run_id}:owner"


def _seq_of(entry_id: bytes | str | None) -> int:
    if entry_id is None:
        return 0
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[1])


class RedisPublisher:
    def __init__(self, broker: RedisBroker, run_id: str) -> None:
        self._broker = broker
        self._run_id = run_id
        self._key = stream_key(broker.prefix, run_id)
        self._owner_key = owner_key(broker.prefix, run_id)
        self._token = uuid.uuid4().hex
        self._fenced = False
        self._log = broker.local.open(run_id)
        self._generation = self._log.take()
        previous = self._log.holder
        self._previous = previous if isinstance(previous, RedisPublisher) else None
        self._log.holder = self
        self._seq: int | None = None
        self._buffer: list[Envelope] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_flush = 0.0
        self._closed = False
        self._ended = False
        self._urgent = False
        self._kick = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._seq if self._seq is not None else self._log.last_seq

    async def _start(self) -> int:
        """Take the log over (fencing off an earlier attempt, wherever it runs) and find its
        last sequence number, from memory or Redis (a run that moved here)."""
        previous, self._previous = self._previous, None
        if previous is not None:
            # An earlier attempt in this process: what it already published is written out
            # under its ownership first (bounded: Redis may be down).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._broker.close_timeout):
                    await previous.flush()
        last = self._log.last_seq
        try:
            async with self._broker.client.pipeline(transaction=False) as pipe:
                pipe.set(self._owner_key, self._token, ex=int(self._broker.ttl_idle))
                pipe.xrevrange(self._key, count=1)
                _, entries = await pipe.execute()
            if entries:
                last = max(last, _seq_of(entries[0][0]))
        except RedisError as exc:
            log.warning("Redis unavailable while opening the log of run %s: %r", self._run_id, exc)
        self._seq = last
        return last

    async def open(self) -> int:
        return self._seq if self._seq is not None else await self._start()

    def open_empty(self) -> None:
        # Nothing to read and nobody to fence off: the first append takes the owner key.
        if self._seq is None and self._previous is None:
            self._seq = self._log.last_seq

    async def publish(self, event: RunEvent) -> int:
        last = self._seq if self._seq is not None else await self._start()
        if self._generation != self._log.generation or self._fenced:
            return 0  # superseded by a later attempt (in this process, or another)
        seq = self._seq = last + 1
        envelope = Envelope(seq, event)
        self._log.append(envelope)
        self._buffer.append(envelope)
        if isinstance(event, EndEvent):
            self._ended = True
        if isinstance(event, EndEvent | ErrorEvent) or (
            isinstance(event, MessageUpsert) and event.streaming
        ):
            self._urgent = True  # a first token or the end: out at once, not in a batch
            self._kick.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())
        elif len(self._buffer) >= self._broker.max_buffer:
            await asyncio.shield(self._flusher)  # back-pressure while Redis is slow
        return seq

    async def _flush_loop(self) -> None:
        broker = self._broker
        delay = 0.0
        while self._buffer:
            wait = self._last_flush + broker.flush_interval - time.monotonic()
            if wait > 0 and not self._closed and not self._urgent:
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._kick.wait()
            self._urgent = False
            batch, self._buffer = self._buffer, []
            try:
                ttl = broker.ttl_after_end if self._ended else broker.ttl_idle
                appended = await broker.append(
                    keys=[self._key, self._owner_key],
                    args=[
                        self._token,
                        f"0-{batch[-1].seq}",
                        dump_batch(batch),
                        broker.max_entries,
                        int(ttl),
                    ],
                )
                delay = 0.0
                if not appended:
                    # A newer attempt of the run took the log over: this one is stale.
                    log.info("log of run %s moved on; dropping %d events", self._run_id, len(batch))
                    self._fenced = True
                    self._buffer = []
                    break
            except RedisError as exc:
                if "equal or smaller" in str(exc):
                    log.info("log of run %s moved on; dropping %d events", self._run_id, len(batch))
                    continue
                log.warning("Redis write for run %s failed (%r); retrying", self._run_id, exc)
                self._buffer = batch + self._buffer
                if len(self._buffer) > broker.max_buffer * 10:
                    dropped = len(self._buffer) - broker.max_buffer * 10
                    self._buffer = self._buffer[dropped:]
                    log.warning("dropped %d events of run %s (Redis down)", dropped, self._run_id)
                delay = min(max(delay * 2, 0.1), 2.0)
                if self._closed and time.monotonic() > self._give_up_at:
                    log.warning("giving up on %d events of run %s", len(self._buffer), self._run_id)
                    self._buffer = []
                    break
                await asyncio.sleep(delay)
            self._last_flush = time.monotonic()
        self._flusher = None

    async def flush(self) -> None:
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._give_up_at = time.monotonic() + self._broker.close_timeout
        try:
            await self.flush()
        finally:
            self._log.publishers -= 1
            if self._log.holder is self:
                self._log.holder = None
            self._log.wakeup.set()
            self._broker.local.release(self._run_id, self._log)

    _give_up_at = 0.0


class RedisBroker:
    """Logs in Redis Streams, followed from memory when the run executes in this process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "loom:",
        ttl_after_end: float = 600.0,
        ttl_idle: float = 86400.0,
        flush_interval: float = 0.05,
        max_entries: int = 20000,
        max_buffer: int = 2000,
        close_timeout: float = 10.0,
        keep_local_seconds: float = 30.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_after_end = ttl_after_end
        self.ttl_idle = ttl_idle
        self.flush_interval = flush_interval
        self.max_entries = max_entries
        self.max_buffer = max_buffer
        self.close_timeout = close_timeout
        self.local = LocalLogs(keep_local_seconds)
        self.append = client.register_script(_APPEND)

    def publisher(self, run_id: str) -> RedisPublisher:
        return RedisPublisher(self, run_id)

    async def read(self, run_id: str, after: int = 0) -> list[Envelope]:
        out: list[Envelope] = []
        try:
            entries: Any = await self.client.xrange(
                stream_key(self.prefix, run_id), min=f"0-{after + 1}"
            )
            for _entry_id, fields in entries:
                out.extend(e for e in load_batch(fields[_FIELD]) if e.seq > after)
        except RedisError as exc:
            log.warning("Redis read of run %s failed: %r", run_id, exc)
        local = self.local.get(run_id)
        if local is not None and local.last_seq > (out[-1].seq if out else after):
            # Events this process published that are not written out yet.
            seen = out[-1].seq if out else after
            out.extend(local.after(seen))
        return out

    async def subscribe(
        self, run_id: str, after: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[list[Envelope]]:
        seen = after
        local = self.local.get(run_id)
        if local is not None and local.publishers:
            async for batch in self.local.follow(run_id, after, heartbeat, orphan_ends=True):
                if batch:
                    seen = batch[-1].seq
                yield batch
                if batch and isinstance(batch[-1].event, EndEvent):
                    return
        async for batch in self._follow_remote(run_id, seen, heartbeat):
            yield batch

    async def _follow_remote(
        self, run_id: str, after: int, heartbeat: float | None
    ) -> AsyncIterator[list[Envelope]]:
        key = stream_key(self.prefix, run_id)
        block_ms = int(1000 * (heartbeat if heartbeat is not None else 5.0))
        seen = after
        while True:
            try:
                reply: Any = await self.client.xread({key: f"0-{seen}"}, block=block_ms)
            except RedisError as exc:
                log.info("Redis read of run %s failed (%r); retrying", run_id, exc)
                await asyncio.sleep(min(1.0, block_ms / 1000))
                yield []
                continue
            entries = _entries(reply, key)
            if not entries:
                yield []
                continue
            batch: list[Envelope] = []
            for entry_id, fields in entries:
                batch.extend(e for e in load_batch(fields[_FIELD]) if e.seq > seen)
                seen = max(seen, _seq_of(entry_id))
            if batch:
                yield batch
                if isinstance(batch[-1].event, EndEvent):
                    return

    async def exists(self, run_id: str) -> bool:
        local = self.local.get(run_id)
        if local is not None and (local.events or local.frozen is not None or local.publishers):
            return True
        try:
            return bool(await self.client.exists(stream_key(self.prefix, run_id)))
        except RedisError:
            return False

    async def aclose(self) -> None:
        return None


def _entries(reply: Any, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of one stream from an ``XREAD`` reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        for name, value in reply.items():
            if (name.decode() if isinstance(name, bytes) else name) == key:
                return list(value[0] if value and isinstance(value[0], list) else value)
        return []
    for name, value in reply:
        if (name.decode() if isinstance(name, bytes) else name) == key:
            return list(value)
    return []
