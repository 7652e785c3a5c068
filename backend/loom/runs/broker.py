"""Carrying a run's events from the worker that executes it to the streams that watch it.

A run's events form a log: each one gets the next per-run sequence number when published,
and any subscriber reads the log from any position (``after`` the last number it saw), then
follows it live until ``end``. Two implementations share this interface and one contract
test suite:

* :class:`LocalBroker` keeps logs in this process's memory: one Loom process, no Redis.
* :class:`~loom.runs.redis_broker.RedisBroker` keeps them in Redis Streams too, so any
  process serves any run's stream, and a run that moves to another worker after a crash
  continues the same log.

Publishing is asynchronous and batched: a publisher appends events to its log at once and
writes them out (to Redis) in batches; ``flush`` waits until everything published is out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Protocol

from loom.runs.events import EndEvent, Envelope, RunEvent, dump_batch, load_batch


class Publisher(Protocol):
    """Appends events to one run's log."""

    @property
    def last_seq(self) -> int: ...

    async def open(self) -> int:
        """Take the log over for this publisher; returns the log's last sequence number
        (0 for a log that is empty: a run's first attempt). ``publish`` opens it too."""
        ...

    def open_empty(self) -> None:
        """Open a log known to be empty (a run's first execution) without looking."""
        ...

    async def publish(self, event: RunEvent) -> int:
        """Append ``event``; returns its sequence number, or 0 when the event was dropped
        because a newer publisher (a later attempt of the run) has opened the log since."""
        ...

    async def flush(self) -> None:
        """Wait until every event published so far is readable by any subscriber."""
        ...

    async def close(self) -> None:
        """Flush and let go of the log (it expires a while after the run's end)."""
        ...


class Broker(Protocol):
    def publisher(self, run_id: str) -> Publisher:
        """A publisher continuing the run's log after its last event.

        Synchronous, so that a worker opens the log before anything can subscribe to it:
        subscribers in this process then follow it from memory.
        """
        ...

    async def read(self, run_id: str, after: int = 0) -> list[Envelope]:
        """The events of the log after ``after``, as far as they go now."""
        ...

    def subscribe(
        self, run_id: str, after: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[list[Envelope]]:
        """Events after ``after``, in batches of whatever has arrived, until ``end``.

        An empty batch means ``heartbeat`` idle seconds passed (the caller may check the
        run's status and give up). A log that does not exist yet is waited for.
        """
        ...

    async def exists(self, run_id: str) -> bool:
        """Whether the run has a log (events were published and have not expired)."""
        ...

    async def aclose(self) -> None: ...


class _Log:
    __slots__ = (
        "done",
        "events",
        "expiry",
        "frozen",
        "frozen_last",
        "generation",
        "holder",
        "publishers",
        "subscribers",
        "wakeup",
    )

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        # A finished, idle log is kept serialised (a few KB instead of tens of objects):
        # replaying it (a late follower, a resume after the end) decodes it.
        self.frozen: bytes | None = None
        self.frozen_last = 0
        self.wakeup = asyncio.Event()
        self.done = False
        self.publishers = 0
        self.subscribers = 0
        self.expiry: asyncio.TimerHandle | None = None
        # Bumped by every new publisher: only the newest one may append (see ``take``).
        self.generation = 0
        # The newest publisher (a broker may need to let the previous one finish writing out).
        self.holder: object | None = None

    def take(self) -> int:
        """Open the log for a new publisher; returns its generation.

        A publisher of an older generation is a stale attempt of the run (its worker lost
        the lease and has not noticed yet): what it publishes from now on is dropped, so it
        can neither interleave with the new attempt's events nor follow its ``end``.
        """
        self.thaw()
        self.generation += 1
        self.publishers += 1
        self.done = False
        return self.generation

    def freeze(self) -> int:
        """Keep a finished log serialised; returns its size in bytes."""
        if self.frozen is None and self.events:
            self.frozen_last = self.events[-1].seq
            self.frozen = dump_batch(self.events)
            self.events = []
        return len(self.frozen or b"")

    def thaw(self) -> None:
        if self.frozen is not None:
            self.events = load_batch(self.frozen)
            self.frozen = None

    @property
    def last_seq(self) -> int:
        if self.frozen is not None:
            return self.frozen_last
        return self.events[-1].seq if self.events else 0

    def append(self, envelope: Envelope) -> None:
        self.thaw()
        self.events.append(envelope)
        if isinstance(envelope.event, EndEvent):
            self.done = True
        self.wakeup.set()

    def after(self, seq: int) -> list[Envelope]:
        if self.frozen is not None:
            if self.frozen_last <= seq:
                return []
            return [e for e in load_batch(self.frozen) if e.seq > seq]
        events = self.events
        if not events or events[-1].seq <= seq:
            return []
        # Sequence numbers are dense from the log's first one: index arithmetic, no search.
        start = max(0, seq - events[0].seq + 1)
        return events[start:]


class LocalLogs:
    """In-memory logs of runs, shared by :class:`LocalBroker` and the Redis broker (which
    serves runs executing in its own process from memory)."""

    def __init__(self, keep_seconds: float, max_frozen_bytes: int = 32 * 1024 * 1024) -> None:
        self._logs: dict[str, _Log] = {}
        self._keep = keep_seconds
        # Finished logs kept serialised, oldest first, within ``max_frozen_bytes`` in all.
        self._frozen: OrderedDict[str, int] = OrderedDict()
        self._frozen_bytes = 0
        self._max_frozen_bytes = max_frozen_bytes

    def get(self, run_id: str) -> _Log | None:
        return self._logs.get(run_id)

    def open(self, run_id: str) -> _Log:
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = _Log()
        if log.expiry is not None:
            log.expiry.cancel()
            log.expiry = None
        size = self._frozen.pop(run_id, None)  # in use again: counted again when released
        if size is not None:
            self._frozen_bytes -= size
        return log

    def release(self, run_id: str, log: _Log) -> None:
        """Forget an idle log: at once if it holds nothing, else after ``keep_seconds``
        (a finished one kept serialised, and the oldest of those first when they take more
        than their bound)."""
        if log.publishers or log.subscribers or self._logs.get(run_id) is not log:
            return
        if not log.events and log.frozen is None:
            del self._logs[run_id]
            return
        if log.done and run_id not in self._frozen:
            size = log.freeze()
            self._frozen[run_id] = size
            self._frozen_bytes += size
            while self._frozen_bytes > self._max_frozen_bytes and len(self._frozen) > 1:
                oldest = next(iter(self._frozen))
                old = self._logs.get(oldest)
                if old is not None and not (old.publishers or old.subscribers):
                    self._forget(oldest, old)
                else:
                    self._frozen_bytes -= self._frozen.pop(oldest)
        if log.expiry is None:
            log.expiry = asyncio.get_running_loop().call_later(self._keep, self._drop, run_id, log)

    def _drop(self, run_id: str, log: _Log) -> None:
        if self._logs.get(run_id) is log and not (log.publishers or log.subscribers):
            self._forget(run_id, log)

    def _forget(self, run_id: str, log: _Log) -> None:
        del self._logs[run_id]
        if log.expiry is not None:
            log.expiry.cancel()
            log.expiry = None
        size = self._frozen.pop(run_id, None)
        if size is not None:
            self._frozen_bytes -= size

    async def follow(
        self, run_id: str, after: int, heartbeat: float | None, *, orphan_ends: bool = False
    ) -> AsyncIterator[list[Envelope]]:
        """Follow a local log until ``end``.

        With ``orphan_ends``, following also stops when the log has no publisher left and no
        end (its run moved to another process: the caller continues from elsewhere), and when
        it does not reach back to ``after`` (a later attempt of a run that moved here: its
        earlier events are elsewhere, and so is the rest for this follower).
        """
        log = self.open(run_id)
        log.subscribers += 1
        seen = after
        try:
            while True:
                batch = log.after(seen)
                if batch:
                    if orphan_ends and batch[0].seq > seen + 1:
                        return
                    seen = batch[-1].seq
                    yield batch
                    if log.done and log.last_seq == seen:
                        return
                    continue
                if log.done or (orphan_ends and not log.publishers):
                    return
                log.wakeup.clear()
                # Re-check after clearing: an event published in between would be missed.
                if log.last_seq > seen or log.done or (orphan_ends and not log.publishers):
                    continue
                try:
                    async with asyncio.timeout(heartbeat):
                        await log.wakeup.wait()
                except TimeoutError:
                    yield []
        finally:
            log.subscribers -= 1
            self.release(run_id, log)


class LocalPublisher:
    def __init__(self, logs: LocalLogs, run_id: str) -> None:
        self._logs = logs
        self._run_id = run_id
        self._log = logs.open(run_id)
        self._generation = self._log.take()
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    async def open(self) -> int:
        return self._log.last_seq

    def open_empty(self) -> None:
        return None

    async def publish(self, event: RunEvent) -> int:
        if self._generation != self._log.generation:
            return 0  # superseded by a later attempt
        seq = self._log.last_seq + 1
        self._log.append(Envelope(seq, event))
        return seq

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._log.publishers -= 1
        # Wake followers: a log whose publisher left without an end is over for this process.
        self._log.wakeup.set()
        self._logs.release(self._run_id, self._log)


class LocalBroker:
    """Logs in this process's memory (one Loom process, no Redis)."""

    def __init__(self, keep_seconds: float = 60.0) -> None:
        self._logs = LocalLogs(keep_seconds)

    def publisher(self, run_id: str) -> LocalPublisher:
        return LocalPublisher(self._logs, run_id)

    async def read(self, run_id: str, after: int = 0) -> list[Envelope]:
        log = self._logs.get(run_id)
        return log.after(after) if log else []

    async def subscribe(
        self, run_id: str, after: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[list[Envelope]]:
        async for batch in self._logs.follow(run_id, after, heartbeat):
            yield batch

    async def exists(self, run_id: str) -> bool:
        log = self._logs.get(run_id)
        return log is not None and bool(log.events or log.frozen is not None or log.publishers)

    async def aclose(self) -> None:
        return None
