"""Runs as every protocol sees them: create, stop, follow.

:class:`RunService` validates a run request against its thread and assistant, records the run
(the run row is the whole job) and gets it executed: by this process's worker at once when it
has room and the thread is idle, else through the queue. It stops runs wherever they execute
and follows their event logs, ending a stream from the run's recorded status if its log
cannot (a lost Redis stream, say): a client is never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from loom.agents.config import ConfigError, with_overrides
from loom.agents.registry import AgentFactory
from loom.agents.state import with_ids
from loom.errors import Conflict, InvalidInput, NotFound
from loom.limits import StreamSlot, StreamSlots
from loom.metrics import Metrics
from loom.runs.broker import Broker
from loom.runs.events import EndEvent, Envelope, ErrorEvent
from loom.runs.executor import stored_input
from loom.runs.queue import Claim
from loom.runs.wakeup import Wakeup
from loom.runs.worker import Worker
from loom.storage.assistants import AssistantRepo
from loom.storage.namespaces import is_namespace
from loom.storage.runs import (
    TERMINAL,
    MultitaskStrategy,
    NewRun,
    OnDisconnect,
    Run,
    RunRepo,
    StopAction,
)
from loom.storage.threads import ThreadRepo

log = logging.getLogger("loom.runs")

# Per-run config may not say who is running what where.
_IDENTITY_KEYS = frozenset({"thread_id", "assistant_id", "user_id", "run_id", "checkpoint_ns"})
MAX_RECURSION_LIMIT = 200
STOP_WAIT_SECONDS = 5.0
# How long a stream whose run has ended in Postgres waits for the run's own end event.
END_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class RunRequest:
    """A run as a protocol asks for it (already parsed from its wire shape)."""

    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None
    input: list[Any] | dict[str, Any] | None
    config: dict[str, Any] | None
    multitask_strategy: MultitaskStrategy = "reject"
    on_disconnect: OnDisconnect = "continue"
    # Plain assistant-config keys (``system_message``, ``model``, ``tools``, ...) merged over
    # the assistant's config for this run only; validated like an assistant's config.
    overrides: dict[str, Any] | None = None
    # Document namespaces (``loom.storage.namespaces``) the run may search besides its
    # assistant's and thread's. The protocol that sets them has checked the caller owns them.
    namespaces: tuple[str, ...] = ()


def decode_input(value: list[Any] | dict[str, Any] | None) -> list[BaseMessage] | None:
    """Both input forms OpenGPTs clients send, or ``None`` (continue from the checkpoint)."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "messages" not in value:
            raise InvalidInput('input must be {"messages": [...]}, a list of messages, or null')
        value = value["messages"]
        if value is None:
            return None
    if not isinstance(value, list):
        raise InvalidInput("input.messages must be a list")
    try:
        return with_ids(value)
    except ValueError as exc:
        raise InvalidInput(f"Invalid input: {exc}") from exc


def run_options(config: dict[str, Any] | None, default_limit: int) -> tuple[int, str | None]:
    """(recursion limit, checkpoint to fork from) of a run's per-run config."""
    config = config or {}
    configurable = config.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise InvalidInput("config.configurable must be an object")
    forbidden = sorted(_IDENTITY_KEYS & configurable.keys())
    if forbidden:
        raise InvalidInput(f"config.configurable may not set {', '.join(forbidden)}")
    limit = config.get("recursion_limit", default_limit)
    if (
        not isinstance(limit, int)
        or isinstance(limit, bool)
        or not 2 <= limit <= MAX_RECURSION_LIMIT
    ):
        raise InvalidInput(
            f"config.recursion_limit must be an integer from 2 to {MAX_RECURSION_LIMIT}"
        )
    checkpoint_id = configurable.get("checkpoint_id")
    if checkpoint_id is not None and not isinstance(checkpoint_id, str):
        raise InvalidInput("config.configurable.checkpoint_id must be a string")
    return limit, checkpoint_id


class RunService:
    def __init__(
        self,
        *,
        runs: RunRepo,
        threads: ThreadRepo,
        assistants: AssistantRepo,
        factory: AgentFactory,
        broker: Broker,
        wakeup: Wakeup,
        worker: Worker | None,
        default_recursion_limit: int,
        lease_seconds: float,
        metrics: Metrics | None = None,
        max_active_runs: int = 0,
        streams: StreamSlots | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_active = max_active_runs
        self._streams = streams
        self._runs = runs
        self._threads = threads
        self._assistants = assistants
        self._factory = factory
        self._broker = broker
        self._wakeup = wakeup
        self._worker = worker
        self._default_limit = default_recursion_limit
        self._lease_seconds = lease_seconds

    async def create(self, user_id: str, request: RunRequest) -> Run:
        """Validate, record and start (or queue) a run; answers at once with its record."""
        found = await self._threads.get_own_with_assistant(user_id, request.thread_id)
        if found is None:
            raise NotFound("Thread not found")
        thread, assistant = found
        # What the thread is (its assistant, gone or not) conflicts with the request: 409.
        if thread.assistant_id is None:
            raise Conflict("The thread has no assistant (it was deleted); choose another one")
        if request.assistant_id is not None and request.assistant_id != thread.assistant_id:
            raise Conflict("assistant_id does not match the thread's assistant")
        if assistant is None:
            raise Conflict("The thread's assistant is no longer available")
        try:
            resolved = self._factory.resolve(assistant.config)
        except ConfigError as exc:
            raise Conflict(f"The assistant's config is no longer valid: {exc}") from exc
        if request.overrides:
            try:
                resolved = self._factory.resolve(
                    with_overrides(assistant.config, request.overrides)
                )
            except ConfigError as exc:
                raise InvalidInput(f"Invalid overrides for this run: {exc}") from exc
        bad = [ns for ns in request.namespaces if not is_namespace(ns)]
        if bad:
            raise InvalidInput(f"Not a document namespace: {bad[0]!r}")
        messages = decode_input(request.input)
        default_limit = resolved.config.recursion_limit or self._default_limit
        limit, checkpoint_id = run_options(request.config, default_limit)
        new = NewRun(
            user_id=user_id,
            thread_id=thread.thread_id,
            assistant_id=thread.assistant_id,
            input=stored_input(messages),
            config=request.config or {},
            multitask_strategy=request.multitask_strategy,
            on_disconnect=request.on_disconnect,
            recursion_limit=limit,
            checkpoint_id=checkpoint_id,
            overrides=request.overrides or None,
            namespaces=request.namespaces,
        )
        worker = self._worker
        reserved = worker is not None and worker.reserve()
        try:
            created = await self._runs.create(
                new,
                claim_owner=worker.owner if worker is not None and reserved else None,
                lease_seconds=self._lease_seconds,
                notify=self._wakeup.notifies_on_create,
                max_active=self._max_active,
            )
        except BaseException:
            if worker is not None and reserved:
                worker.release()
            raise
        run = created.run
        if worker is not None and reserved:
            if run.status == "running" and run.claim_token is not None:
                worker.adopt(
                    Claim(
                        run=run,
                        token=run.claim_token,
                        assistant_config=assistant.config,
                        fresh=True,
                    )
                )
            else:
                worker.release()
        if run.status == "pending":
            if not self._wakeup.notifies_on_create:
                await self._wakeup.notify()
            if worker is not None:
                worker.poke()
        for run_id in created.stopping:
            await self._signal_stop(
                run_id, "interrupt" if run.multitask_strategy == "interrupt" else "rollback"
            )
        for run_id in created.cancelled:
            await self._end_log(run_id, "cancelled", "Replaced by a newer run on the thread")
        return run

    async def stop(self, run: Run, action: StopAction = "cancel") -> Run:
        """Stop a pending or running run wherever it is; waits (briefly) for its end.

        Waiting matters: the caller reads the run's status next, or deletes the thread,
        which must not race the run's last checkpoint writes.
        """
        run_id = run.run_id
        for _ in range(3):
            current = await self._runs.get(run_id)
            if current is None or current.status in TERMINAL:
                return current or run
            if current.status == "pending":
                if await self._runs.cancel_pending(run_id, "The run was cancelled"):
                    await self._end_log(run_id, "cancelled", "The run was cancelled")
                    break
                continue  # claimed meanwhile: stop it running
            if await self._runs.request_stop(run_id, action):
                await self._signal_stop(run_id, action)
                break
        return await self.wait_ended(run_id, STOP_WAIT_SECONDS) or run

    async def wait_ended(self, run_id: uuid.UUID, seconds: float) -> Run | None:
        """The run once it has ended (or as it is after ``seconds``)."""
        deadline = asyncio.get_running_loop().time() + seconds
        delay = 0.01
        while True:
            current = await self._runs.get(run_id)
            if current is None or current.status in TERMINAL:
                return current
            if asyncio.get_running_loop().time() > deadline:
                return current
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _signal_stop(self, run_id: uuid.UUID, action: StopAction) -> None:
        if self._worker is not None and self._worker.stop_run(run_id, action):
            return
        await self._wakeup.send_stop(run_id, action)

    async def _end_log(self, run_id: uuid.UUID, status: str, message: str) -> None:
        """End the log of a run that never started (its followers must not wait)."""
        publisher = self._broker.publisher(str(run_id))
        try:
            await publisher.publish(ErrorEvent(code="cancelled", message=message))
            await publisher.publish(EndEvent(status=status))
        finally:
            await publisher.close()

    async def has_log(self, run: Run) -> bool:
        """Whether the run's events can be followed (it is active, or its log is kept)."""
        return run.status not in TERMINAL or await self._broker.exists(str(run.run_id))

    async def history(self, run_id: uuid.UUID, upto: int) -> list[Envelope]:
        """The run's events up to ``upto`` (to rebuild a stream's state on resume)."""
        return [e for e in await self._broker.read(str(run_id)) if e.seq <= upto]

    async def stream_slot(self, user_id: str) -> StreamSlot:
        """A place for one more open stream of ``user_id`` (:class:`RateLimited` when they
        are all taken). Pass it to :meth:`follow`, which gives it back when the stream ends;
        release it yourself if the stream never starts."""
        if self._streams is None:
            return StreamSlot(None, user_id, "")
        return await self._streams.acquire(user_id)

    async def create_streamed(self, user_id: str, request: RunRequest) -> tuple[Run, StreamSlot]:
        """:meth:`create` for a client that streams the run: its stream's place is taken
        first, so a caller over its open-streams limit starts nothing."""
        slot = await self.stream_slot(user_id)
        try:
            return await self.create(user_id, request), slot
        except BaseException:
            await slot.release()
            raise

    def follow(
        self,
        run_id: uuid.UUID,
        after: int,
        heartbeat: float,
        slot: StreamSlot | None = None,
    ) -> AsyncIterator[list[Envelope]]:
        """The run's events after ``after`` until ``end``; an empty batch is a heartbeat
        (counted in the metrics' open streams while it is followed). ``slot`` (from
        :meth:`stream_slot`) is held while the stream lasts."""
        events = self._follow(run_id, after, heartbeat)
        if slot is not None:
            events = slot.guard(events)
        return events if self._metrics is None else self._metrics.counted(events)

    async def _follow(
        self, run_id: uuid.UUID, after: int, heartbeat: float
    ) -> AsyncIterator[list[Envelope]]:
        """The run's events after ``after`` until ``end``; an empty batch is a heartbeat.

        When the log goes quiet and the run has ended in Postgres (its log was lost, or its
        worker died and the run was settled elsewhere), the stream is ended from the row,
        after a grace period: a worker records the outcome first and publishes the end just
        after, and that end (with its real error) is what a client should get.
        """
        seen = after
        loop = asyncio.get_running_loop()
        ended_at: float | None = None
        async for batch in self._broker.subscribe(str(run_id), seen, heartbeat):
            if batch:
                seen = batch[-1].seq
                yield batch
                if isinstance(batch[-1].event, EndEvent):
                    return
                continue
            yield batch
            row = None
            with contextlib.suppress(Exception):
                row = await self._runs.status(run_id)
            if row is not None and row[0] not in TERMINAL:
                ended_at = None
                continue
            if ended_at is None:
                ended_at = loop.time()
            if loop.time() - ended_at < END_GRACE_SECONDS:
                continue
            rest = [e for e in await self._broker.read(str(run_id), seen) if e.seq > seen]
            if rest and isinstance(rest[-1].event, EndEvent):
                yield rest
                return
            status, error = row if row is not None else ("error", "The run no longer exists")
            tail = rest[:]
            next_seq = (rest[-1].seq if rest else seen) + 1
            if status in ("error", "cancelled"):
                code = "cancelled" if status == "cancelled" else "run_lost"
                tail.append(Envelope(next_seq, ErrorEvent(code=code, message=error or "")))
                next_seq += 1
            tail.append(Envelope(next_seq, EndEvent(status=status)))
            yield tail
            return
