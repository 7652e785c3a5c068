"""Waking workers when runs are queued, and telling them to stop a run they hold.

Two implementations share this interface and one contract test suite:

* :class:`PgWakeup`: Postgres ``LISTEN``/``NOTIFY`` (channels ``loom_runs`` and
  ``loom_cancel``) on one dedicated connection per process. Used when no Redis is configured.
  ``loom_create_run`` notifies in the same statement that queues a run, so queueing costs no
  extra round trip.
* :class:`RedisWakeup`: a Redis list (``BLPOP`` wakes one waiting worker per queued run) and a
  pub/sub channel for stop requests.

Wake-ups are hints: workers also poll the queue every few seconds, so a lost one only delays
a run. Stop requests are recorded in the run's row too, and every heartbeat reads them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

import psycopg
import redis.asyncio as redis
from redis.exceptions import RedisError

from loom.db.types import Pool
from loom.storage.runs import StopAction

log = logging.getLogger("loom.runs.wakeup")

StopHandler = Callable[[uuid.UUID, StopAction], None]
_ACTIONS: frozenset[str] = frozenset({"cancel", "interrupt", "rollback"})


class Wakeup(Protocol):
    @property
    def notifies_on_create(self) -> bool:
        """Whether ``loom_create_run`` itself should notify (Postgres), saving a call."""
        ...

    async def start(self) -> None: ...

    async def notify(self) -> None:
        """A run was queued: wake a worker."""
        ...

    async def wait(self, seconds: float) -> bool:
        """Wait for a wake-up; ``False`` when ``seconds`` passed without one."""
        ...

    async def send_stop(self, run_id: uuid.UUID, action: StopAction) -> None:
        """Tell whichever worker holds ``run_id`` to stop it."""
        ...

    def on_stop(self, handler: StopHandler) -> None:
        """Call ``handler`` for every stop request (in every process)."""
        ...

    async def aclose(self) -> None: ...


def _parse_stop(payload: str) -> tuple[uuid.UUID, StopAction] | None:
    run, _, action = payload.partition(" ")
    try:
        run_id = uuid.UUID(run)
    except ValueError:
        return None
    # A bare run id (what ``loom_create_run`` sends for interrupt/rollback) says nothing of
    # the action: taking it for ``cancel`` would end an interrupted run ``cancelled``. The
    # service signals the right action right after, and heartbeats read it from the row.
    if action not in _ACTIONS:
        return None
    return run_id, action  # type: ignore[return-value]


class _Handlers:
    def __init__(self) -> None:
        self._handlers: list[StopHandler] = []

    def add(self, handler: StopHandler) -> None:
        self._handlers.append(handler)

    def stop(self, payload: str) -> None:
        parsed = _parse_stop(payload)
        if parsed is None:
            return
        for handler in self._handlers:
            try:
                handler(*parsed)
            except Exception:
                log.exception("stop handler failed")


class PgWakeup:
    """``LISTEN``/``NOTIFY`` on a dedicated connection (reconnected when it drops)."""

    notifies_on_create = True

    def __init__(self, url: str, pool: Pool, *, reconnect_seconds: float = 1.0) -> None:
        self._url = url
        self._pool = pool
        self._reconnect = reconnect_seconds
        self._handlers = _Handlers()
        self._woken = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="loom-pg-wakeup")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._listening.wait()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN loom_runs")
                    await conn.execute("LISTEN loom_cancel")
                    self._listening.set()
                    # Anything queued while not listening: treat the (re)connect as a wake-up.
                    self._woken.set()
                    async for note in conn.notifies():
                        if note.channel == "loom_runs":
                            self._woken.set()
                        elif note.channel == "loom_cancel":
                            self._handlers.stop(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%r); reconnecting", exc)
            self._listening.clear()
            await asyncio.sleep(self._reconnect)

    async def _notify(self, channel: str, payload: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def notify(self) -> None:
        await self._notify("loom_runs", "")

    async def wait(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    async def send_stop(self, run_id: uuid.UUID, action: StopAction) -> None:
        await self._notify("loom_cancel", f"{run_id} {action}")

    def on_stop(self, handler: StopHandler) -> None:
        self._handlers.add(handler)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RedisWakeup:
    """A Redis list per queue (one ``BLPOP`` wakes one worker) and a stop channel."""

    notifies_on_create = False

    def __init__(self, client: redis.Redis, *, prefix: str = "loom:") -> None:
        self._client = client
        self._list = f"{prefix}wake"
        self._channel = f"{prefix}stop"
        self._handlers = _Handlers()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="loom-redis-stop")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._subscribed.wait()

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self._handlers.stop(data.decode())
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("Redis stop channel lost (%r); resubscribing", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
            self._subscribed.clear()
            await asyncio.sleep(1.0)

    async def notify(self) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.lpush(self._list, b"1")
                pipe.ltrim(self._list, 0, 255)
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not wake workers through Redis (%r); they poll", exc)

    async def wait(self, seconds: float) -> bool:
        try:
            got = await self._client.blpop([self._list], timeout=max(seconds, 0.01))
        except RedisError as exc:
            log.info("Redis wake-up wait failed (%r)", exc)
            await asyncio.sleep(min(seconds, 1.0))
            return False
        return got is not None

    async def send_stop(self, run_id: uuid.UUID, action: StopAction) -> None:
        try:
            await self._client.publish(self._channel, f"{run_id} {action}")
        except RedisError as exc:
            log.warning("could not send a stop through Redis (%r); heartbeats carry it", exc)

    def on_stop(self, handler: StopHandler) -> None:
        self._handlers.add(handler)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
