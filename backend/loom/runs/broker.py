"""Fan-out of run events to the streams that watch a run.

:class:`LocalBroker` keeps each active run's events in memory, so a subscriber that arrives
late (or reconnects) replays them from the start. A run's log is dropped a while after it
ends. A Redis-backed broker with the same interface lets several processes share runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from loom.runs.events import EndEvent, RunEvent


class Broker(Protocol):
    def open(self, run_id: str) -> None: ...
    def publish(self, run_id: str, event: RunEvent) -> None: ...
    def subscribe(
        self, run_id: str, heartbeat: float | None = None
    ) -> AsyncIterator[list[RunEvent]]: ...
    def close(self, run_id: str) -> None: ...
    def known(self, run_id: str) -> bool: ...


class _Log:
    __slots__ = ("done", "events", "wakeup")

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.wakeup = asyncio.Event()
        self.done = False


class LocalBroker:
    def __init__(self, keep_seconds: float = 60.0) -> None:
        self._logs: dict[str, _Log] = {}
        self._keep = keep_seconds

    def open(self, run_id: str) -> None:
        self._logs.setdefault(run_id, _Log())

    def publish(self, run_id: str, event: RunEvent) -> None:
        log = self._logs.get(run_id)
        if log is None or log.done:
            return
        log.events.append(event)
        if isinstance(event, EndEvent):
            log.done = True
        log.wakeup.set()

    def close(self, run_id: str) -> None:
        log = self._logs.get(run_id)
        if log is None:
            return
        if not log.done:
            log.done = True
            log.wakeup.set()
        asyncio.get_running_loop().call_later(self._keep, self._logs.pop, run_id, None)

    def known(self, run_id: str) -> bool:
        return run_id in self._logs

    async def subscribe(
        self, run_id: str, heartbeat: float | None = None
    ) -> AsyncIterator[list[RunEvent]]:
        """The run's events from the first, in batches of whatever has arrived.

        Batching lets a busy server write many tokens in one send; an idle stream gets each
        event as soon as it is published. An empty batch means ``heartbeat`` idle seconds.
        """
        log = self._logs.get(run_id)
        if log is None:
            return
        index = 0
        while True:
            if index < len(log.events):
                batch = log.events[index:]
                index += len(batch)
                yield batch
                continue
            if log.done:
                return
            log.wakeup.clear()
            # Re-check after clearing: an event published in between would otherwise be missed.
            if index < len(log.events) or log.done:
                continue
            try:
                async with asyncio.timeout(heartbeat):
                    await log.wakeup.wait()
            except TimeoutError:
                yield []
