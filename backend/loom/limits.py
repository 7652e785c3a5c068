"""Per-user limits and quotas, shared by every protocol.

Each limit raises :class:`~loom.errors.RateLimited` (code ``rate_limited``, with the seconds
after which trying again makes sense); each protocol maps it to its 429.

* **Requests per minute** (:class:`RequestLimiter`): a fixed one-minute window per user. With
  Redis, one ``INCR`` (and an ``EXPIRE`` in the same round trip) per authenticated request,
  shared by every process; without, each process counts on its own. Never a database query.
* **Open streams** (:class:`StreamSlots`): run streams a user has open at once. A stream holds
  a slot, a lease renewed while the stream flows (at least every heartbeat) and given back
  when it ends; a slot whose process died expires with its lease. With Redis the slots of a
  user are one sorted set (member: slot id, score: lease expiry) shared by every process;
  without, each process counts its own streams.
* **Active runs**: checked by ``loom_create_run`` in Postgres (the run table is the truth), see
  :class:`loom.storage.runs.RunRepo`.
* **Upload bytes per day** (:class:`IngestQuota`): a row per user and UTC day in Postgres,
  charged atomically when an upload is accepted.

A Redis that does not answer never blocks a request: the limit is skipped (and logged).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as redis

from loom.db.types import Pool
from loom.errors import RateLimited

log = logging.getLogger("loom.limits")

T = TypeVar("T")
WINDOW_SECONDS = 60
# A stream over its limit: worth trying again after this many seconds.
STREAM_RETRY_SECONDS = 5
# A run over the limit of active runs: worth trying again after this many seconds.
RUN_RETRY_SECONDS = 5

Clock = Callable[[], float]


class RequestLimiter:
    """At most ``per_minute`` authenticated requests per user and clock minute (0: off)."""

    def __init__(
        self,
        per_minute: int,
        client: redis.Redis | None = None,
        prefix: str = "loom:",
        clock: Clock = time.time,
    ) -> None:
        self._limit = per_minute
        self._redis = client
        self._prefix = prefix
        self._clock = clock
        self._local: dict[str, tuple[int, int]] = {}  # user -> (window, count)

    async def hit(self, user_id: str) -> None:
        """Count one request of ``user_id``; :class:`RateLimited` when over the limit."""
        if self._limit <= 0:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        count = await self._count(user_id, window)
        if count is not None and count > self._limit:
            retry = (window + 1) * WINDOW_SECONDS - now
            raise RateLimited(
                f"Too many requests: at most {self._limit} a minute; try again shortly",
                retry_after=int(retry) + 1,
            )

    async def _count(self, user_id: str, window: int) -> int | None:
        if self._redis is None:
            current = self._local.get(user_id)
            count = current[1] + 1 if current is not None and current[0] == window else 1
            if current is None and len(self._local) > 100_000:
                self._local = {u: c for u, c in self._local.items() if c[0] == window}
            self._local[user_id] = (window, count)
            return count
        key = f"{self._prefix}rate:{user_id}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS * 2)
                count, _ = await pipe.execute()
        except Exception as exc:  # Redis down: do not fail requests over a counter
            log.warning("request rate not counted (%r)", exc)
            return None
        return int(count)


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamSlot:
    """One open stream's hold on its user's slots: renewed while it flows, released once."""

    def __init__(self, slots: StreamSlots | None, user_id: str, slot_id: str) -> None:
        self._slots = slots
        self._user_id = user_id
        self._slot_id = slot_id
        self._renewed = time.monotonic()
        self._released = False

    async def keep(self) -> None:
        if self._slots is None or self._released:
            return
        if time.monotonic() - self._renewed < self._slots.lease_seconds / 3:
            return
        self._renewed = time.monotonic()
        await self._slots.renew(self._user_id, self._slot_id)

    async def release(self) -> None:
        if self._slots is None or self._released:
            return
        self._released = True
        await self._slots.release(self._user_id, self._slot_id)

    async def guard(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """``events``, renewing the slot as they come and releasing it at the end."""
        try:
            async for item in events:
                await self.keep()
                yield item
        finally:
            await self.release()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


class StreamSlots:
    """At most ``max_open`` streams open at once per user (0: off)."""

    def __init__(
        self,
        max_open: int,
        lease_seconds: float,
        client: redis.Redis | None = None,
        prefix: str = "loom:",
        clock: Clock = time.time,
    ) -> None:
        self._max = max_open
        self.lease_seconds = lease_seconds
        self._redis = client
        self._prefix = prefix
        self._clock = clock
        self._local: dict[str, dict[str, float]] = {}  # user -> slot id -> lease expiry

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}streams:{user_id}"

    async def acquire(self, user_id: str) -> StreamSlot:
        """A slot for a new stream of ``user_id``; :class:`RateLimited` when all are taken."""
        if self._max <= 0:
            return StreamSlot(None, user_id, "")
        slot_id = uuid.uuid4().hex
        now = self._clock()
        if self._redis is None:
            held = {s: t for s, t in self._local.get(user_id, {}).items() if t > now}
            granted = len(held) < self._max
            if granted:
                held[slot_id] = now + self.lease_seconds
            self._local[user_id] = held
        else:
            try:
                result: Any = await self._redis.eval(
                    _ACQUIRE,
                    1,
                    self._key(user_id),
                    now,
                    now + self.lease_seconds,
                    slot_id,
                    self._max,
                    int(self.lease_seconds) + 1,
                )
                granted = bool(int(result))
            except Exception as exc:
                log.warning("open streams not counted (%r)", exc)
                return StreamSlot(None, user_id, "")
        if not granted:
            raise RateLimited(
                f"Too many open streams: at most {self._max} at once; close one first",
                retry_after=STREAM_RETRY_SECONDS,
            )
        return StreamSlot(self, user_id, slot_id)

    async def renew(self, user_id: str, slot_id: str) -> None:
        expires = self._clock() + self.lease_seconds
        if self._redis is None:
            held = self._local.get(user_id)
            if held is not None and slot_id in held:
                held[slot_id] = expires
            return
        try:
            await self._redis.zadd(self._key(user_id), {slot_id: expires}, xx=True)
            await self._redis.expire(self._key(user_id), int(self.lease_seconds) + 1)
        except Exception as exc:
            log.warning("stream slot not renewed (%r)", exc)

    async def release(self, user_id: str, slot_id: str) -> None:
        if self._redis is None:
            held = self._local.get(user_id)
            if held is not None:
                held.pop(slot_id, None)
                if not held:
                    self._local.pop(user_id, None)
            return
        try:
            await self._redis.zrem(self._key(user_id), slot_id)
        except Exception as exc:
            log.warning("stream slot not released (%r); it expires with its lease", exc)


def seconds_to_next_day(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((tomorrow - now).total_seconds()) + 1


class IngestQuota:
    """At most ``per_day`` uploaded bytes per user and UTC day (0: off), kept in Postgres."""

    def __init__(self, pool: Pool, per_day: int) -> None:
        self._pool = pool
        self._limit = per_day

    async def charge(self, user_id: str, nbytes: int) -> None:
        """Count ``nbytes`` more for today, or raise :class:`RateLimited` (nothing counted)."""
        if self._limit <= 0 or nbytes <= 0:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO user_upload_usage AS u (user_id, day, bytes)"
                " SELECT %(user)s, (now() AT TIME ZONE 'UTC')::date, %(n)s"
                " WHERE %(n)s <= %(limit)s"
                " ON CONFLICT (user_id, day) DO UPDATE SET bytes = u.bytes + excluded.bytes"
                " WHERE u.bytes + excluded.bytes <= %(limit)s"
                " RETURNING bytes",
                {"user": user_id, "n": nbytes, "limit": self._limit},
            )
            row = await cur.fetchone()
        if row is None:
            raise RateLimited(
                f"Daily upload quota reached ({self._limit} bytes a day); try again tomorrow",
                retry_after=seconds_to_next_day(datetime.now(UTC)),
            )

    async def used(self, user_id: str) -> int:
        """Bytes ``user_id`` uploaded today."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT bytes FROM user_upload_usage"
                " WHERE user_id = %s AND day = (now() AT TIME ZONE 'UTC')::date",
                (user_id,),
            )
            row = await cur.fetchone()
        return int(row["bytes"]) if row else 0
