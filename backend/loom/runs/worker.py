"""The worker: claims runs from the queue and executes up to ``concurrency`` of them at once.

``loom serve`` runs one inside the server process (one process, zero set-up);
``loom worker`` runs one on its own. A worker

* claims runs when woken (:mod:`loom.runs.wakeup`), when a slot frees up, and every
  ``poll_seconds`` anyway;
* renews the leases of the runs it holds every ``heartbeat_seconds`` in one statement; a run
  whose lease is gone, or any failed heartbeat, is stopped without writing anything (another
  worker may own it now); a stop a client asked for arrives by signal or with the heartbeat;
* sweeps expired leases of every worker every ``sweep_seconds`` (back to ``pending``, or
  ``error`` after the last attempt) and ends their streams;
* on :meth:`drain` stops claiming, gives its runs ``drain_seconds`` to finish, then hands the
  rest back to the queue (not counted as a failed attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from loom import logs
from loom.errors import RunLost
from loom.metrics import Metrics
from loom.runs.broker import Broker, Publisher
from loom.runs.events import EndEvent, ErrorEvent
from loom.runs.executor import Outcome, RunControl, RunExecutor, StopReason
from loom.runs.fence import ClaimFence
from loom.runs.queue import Claim, RunQueue
from loom.runs.wakeup import Wakeup
from loom.storage.runs import StopAction
from loom.tracing import Tracing

log = logging.getLogger("loom.worker")


def worker_name() -> str:
    """A lease owner name that says where the worker runs (unique per process start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Held:
    claim: Claim
    task: asyncio.Task[Outcome]
    control: RunControl
    renewed: float  # monotonic time of the last lease renewal (or the claim) that landed


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 16
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 10.0
    sweep_seconds: float = 15.0
    drain_seconds: float = 30.0


class Worker:
    def __init__(
        self,
        *,
        queue: RunQueue,
        executor: RunExecutor,
        broker: Broker,
        wakeup: Wakeup,
        options: WorkerOptions,
        fence: ClaimFence | None = None,
        lease_seconds: float | None = None,
        owner: str | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracing = tracing or Tracing()
        self._queue = queue
        self._executor = executor
        self._broker = broker
        self._wakeup = wakeup
        self.options = options
        self._fence = fence or ClaimFence()
        # A lease not renewed for this long may have lapsed (the database's clock started it
        # a little earlier than this worker saw): its run is stopped and fenced before that.
        lease = lease_seconds if lease_seconds is not None else queue.lease_seconds
        self._safe_seconds = 0.8 * lease
        self.owner = owner or worker_name()
        # Keyed by claim token: a run this worker lost and claimed again is held twice for a
        # moment (the old attempt is being stopped); ``_current`` maps a run to its newest.
        self._held: dict[uuid.UUID, _Held] = {}
        self._current: dict[uuid.UUID, uuid.UUID] = {}
        self._reserved = 0
        self._poke = asyncio.Event()
        self._room = asyncio.Event()
        self._accepting = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        self._wakeup.on_stop(self._on_stop_signal)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="loom-worker-claim"),
            asyncio.create_task(self._listen(), name="loom-worker-wake"),
            asyncio.create_task(self._heartbeat_loop(), name="loom-worker-heartbeat"),
            asyncio.create_task(self._sweep_loop(), name="loom-worker-sweep"),
        ]
        log.info("worker %s started (up to %d runs at once)", self.owner, self.options.concurrency)

    def stop_claiming(self) -> None:
        """Claim nothing more (SIGTERM): in-flight runs go on."""
        if self._accepting:
            log.info("worker %s stops claiming runs", self.owner)
        self._accepting = False
        self._poke.set()

    async def drain(self, seconds: float | None = None) -> None:
        """Stop claiming, give in-flight runs ``seconds`` to finish, hand back the rest."""
        self.stop_claiming()
        seconds = self.options.drain_seconds if seconds is None else seconds
        pending = [h.task for h in self._held.values()]
        if pending:
            log.info("waiting up to %.0f s for %d run(s) to finish", seconds, len(pending))
            await asyncio.wait(pending, timeout=seconds)
        left = list(self._held.values())
        for held in left:
            self._stop(held, "hand_back")
        if left:
            await asyncio.wait([h.task for h in left], timeout=10)
            log.info("handed %d unfinished run(s) back to the queue", len(left))
            with contextlib.suppress(Exception):
                await self._wakeup.notify()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        late = [h.task for h in self._held.values()]  # claimed as the drain began
        if late:
            await asyncio.wait(late, timeout=10)

    # --- capacity -----------------------------------------------------------------------------

    def free_slots(self) -> int:
        if not self._accepting:
            return 0
        return max(0, self.options.concurrency - len(self._held) - self._reserved)

    def reserve(self) -> bool:
        """Hold a slot for a run about to be created already claimed by this worker."""
        if self.free_slots() <= 0:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    def adopt(self, claim: Claim) -> None:
        """Execute a run created already claimed by this worker (uses a reservation)."""
        self.release()
        self._start(claim)

    def poke(self) -> None:
        """Look at the queue now (a run was queued in this process)."""
        self._poke.set()

    def holds(self, run_id: uuid.UUID) -> bool:
        return run_id in self._current

    @property
    def running(self) -> int:
        return len(self._held)

    # --- stopping runs ------------------------------------------------------------------------

    def stop_run(self, run_id: uuid.UUID, reason: StopReason) -> bool:
        """Stop a run this worker holds; ``False`` when it holds no such run."""
        token = self._current.get(run_id)
        held = self._held.get(token) if token is not None else None
        if held is None:
            return False
        self._stop(held, reason)
        return True

    def _stop(self, held: _Held, reason: StopReason) -> None:
        control = held.control
        if reason == "lease_lost":
            self._fence.revoke(held.claim.token)
        if control.settling:
            return
        first = control.reason is None
        if first or reason == "lease_lost":
            control.reason = reason
        if not first:
            # Already stopping: a second cancel would interrupt the run's clean-up (keeping
            # its partial reply, recording its outcome) and leave it leased. A lost lease
            # needs nothing more: the fence refuses its writes.
            return
        # Cancel on the loop's next turn, not now: a task cancelled before its first step
        # never runs its body, so nothing would be recorded (the run would stay leased, then
        # be swept and executed again). A task's first step is queued when it is created,
        # so it runs before this callback.
        asyncio.get_running_loop().call_soon(self._cancel, held)

    @staticmethod
    def _cancel(held: _Held) -> None:
        if not held.control.settling:
            held.task.cancel()

    def _on_stop_signal(self, run_id: uuid.UUID, action: StopAction) -> None:
        self.stop_run(run_id, action)

    # --- loops --------------------------------------------------------------------------------

    def _start(self, claim: Claim) -> None:
        run = claim.run
        if claim.fresh and self._metrics is not None and run.started_at is not None:
            # Both times are the database's: the queue's latency for this run.
            wait = (run.started_at - run.created_at).total_seconds()
            self._metrics.claim_wait.observe(max(0.0, wait))
        stale = self._current.get(claim.run_id)
        if stale is not None and stale in self._held:
            # Its lease lapsed and this worker claimed it again before a heartbeat noticed:
            # the execution it still has is stale.
            log.warning("lost the lease of run %s; stopping it", claim.run_id)
            self._stop(self._held[stale], "lease_lost")
        # The log is opened before the task runs: subscribers in this process follow it from
        # memory from the first event.
        publisher = self._broker.publisher(str(claim.run_id))
        control = RunControl()
        task = asyncio.create_task(
            self._execute(claim, publisher, control), name=f"run-{claim.run_id}"
        )
        self._held[claim.token] = _Held(claim, task, control, time.monotonic())
        self._current[claim.run_id] = claim.token
        run_id, token = claim.run_id, claim.token
        task.add_done_callback(lambda t: self._done(run_id, token, t))

    async def _execute(self, claim: Claim, publisher: Publisher, control: RunControl) -> Outcome:
        """Execute a run in its own task, its ids in the task's logging context (and a span
        around it when tracing is on)."""
        run = claim.run
        logs.run_id.set(str(run.run_id))
        logs.thread_id.set(str(run.thread_id))
        logs.user_id.set(run.user_id)
        attributes = {
            "loom.run_id": str(run.run_id),
            "loom.thread_id": str(run.thread_id),
            "loom.user_id": run.user_id,
            "loom.attempt": run.attempt,
        }
        with self._tracing.span("loom.run", **attributes) as span:
            outcome = await self._executor.execute(claim, publisher, control)
            span.set_attribute("loom.run.status", outcome.status or "not recorded")
        log.debug("run %s: %s", run.run_id, outcome.status or "left to another attempt")
        return outcome

    def _done(self, run_id: uuid.UUID, token: uuid.UUID, task: asyncio.Task[Outcome]) -> None:
        self._held.pop(token, None)
        self._fence.forget(token)
        if self._current.get(run_id) == token:  # not a newer execution of the run
            del self._current[run_id]
        self._room.set()
        self._poke.set()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("run %s: executor failed", run_id, exc_info=exc)
            return
        if task.result().more:
            # Runs queued behind this one on its thread may start now (anywhere).
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        with contextlib.suppress(Exception):
            await self._wakeup.notify()

    async def _claim_loop(self) -> None:
        while True:
            self._poke.clear()
            n = self.free_slots()
            if n > 0:
                try:
                    claims = await self._queue.claim(self.owner, n)
                except Exception as exc:
                    log.warning("claiming runs failed (%r)", exc)
                    claims = []
                    await asyncio.sleep(1.0)
                for claim in claims:
                    self._start(claim)
                    if not self._accepting:
                        # Draining began while claiming: give it straight back (not a
                        # failed attempt), rather than leave it leased until it lapses.
                        self.stop_run(claim.run_id, "hand_back")
                if claims and len(claims) == n:
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.poll_seconds):
                    await self._poke.wait()

    async def _listen(self) -> None:
        """Turn wake-ups into pokes, only while there is room (a full worker leaves them to
        the others)."""
        while True:
            if self.free_slots() <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.poll_seconds):
                        await self._room.wait()
                continue
            if await self._wakeup.wait(self.options.poll_seconds):
                self._poke.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            live = [h for h in self._held.values() if not h.control.settling]
            sent = time.monotonic()
            for h in live:
                if sent - h.renewed > self._safe_seconds:
                    log.warning("the lease of run %s could not be renewed in time", h.claim.run_id)
                    self._stop(h, "lease_lost")
            live = [h for h in live if h.control.reason != "lease_lost"]
            if not live:
                continue
            held = {h.claim.run_id: h.claim.token for h in live}
            try:
                async with asyncio.timeout(self.options.heartbeat_seconds):
                    renewal = await self._queue.heartbeat(held)
            except Exception as exc:
                # Whether the renewal landed is unknown: the leases may lapse, and another
                # worker may take the runs. Stop them without writing (no double execution).
                log.warning("heartbeat failed (%r): stopping %d run(s)", exc, len(live))
                for h in live:
                    self._stop(h, "lease_lost")
                continue
            for h in live:
                if h.claim.run_id in renewal.lost:
                    log.warning("lost the lease of run %s; stopping it", h.claim.run_id)
                    self._stop(h, "lease_lost")
                else:
                    h.renewed = sent
                    if (action := renewal.held.get(h.claim.run_id)) is not None:
                        self._stop(h, action)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_seconds)
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("sweeping expired leases failed (%r)", exc)

    async def sweep_once(self) -> None:
        swept = await self._queue.sweep(RunLost.default_message)
        requeued = False
        for item in swept:
            if item.status == "pending":
                log.warning("run %s: its worker stopped; queued again", item.run_id)
                requeued = True
                continue
            log.warning("run %s: its worker stopped; the run ends %s", item.run_id, item.status)
            publisher = self._broker.publisher(str(item.run_id))
            try:
                code = "cancelled" if item.status == "cancelled" else RunLost.code
                await publisher.publish(ErrorEvent(code=code, message=item.error or ""))
                await publisher.publish(EndEvent(status=item.status))
            finally:
                await publisher.close()
        if requeued:
            await self._notify()
            self._poke.set()
