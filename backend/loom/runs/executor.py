"""Executing runs: one interface, an in-process implementation.

:class:`Executor` takes a recorded run and publishes its typed events to the broker; the API
never runs graphs itself. :class:`LocalExecutor` runs each run as an asyncio task in this
process. Policy on client disconnect: the run goes on to completion and is checkpointed (a
client can watch it again with ``GET /runs/{id}/stream`` while it lasts, or read the thread
state afterwards); only ``POST /runs/{id}/cancel`` stops it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig

from loom.agents.registry import AgentFactory
from loom.agents.serialize import chunk_start, message_to_dict
from loom.errors import public_error
from loom.runs.broker import Broker
from loom.runs.events import (
    EndEvent,
    ErrorEvent,
    MessageDelta,
    MessageUpsert,
    MetadataEvent,
)
from loom.storage.runs import Run, RunRepo, RunStatus
from loom.storage.threads import ThreadRepo

log = logging.getLogger("loom.runs")

CANCEL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class RunJob:
    """A run ready to execute: its record, the assistant's config and the decoded input."""

    run: Run
    assistant_config: dict[str, Any]
    input_messages: list[BaseMessage] | None
    recursion_limit: int
    checkpoint_id: str | None = None
    extra_configurable: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    async def submit(self, job: RunJob) -> None: ...
    async def cancel(self, run_id: uuid.UUID) -> bool: ...
    async def shutdown(self) -> None: ...


def run_config(job: RunJob) -> RunnableConfig:
    configurable: dict[str, Any] = {
        **job.extra_configurable,
        "thread_id": str(job.run.thread_id),
        "assistant_id": str(job.run.assistant_id) if job.run.assistant_id else None,
        "user_id": job.run.user_id,
        "run_id": str(job.run.run_id),
    }
    if job.checkpoint_id:
        configurable["checkpoint_id"] = job.checkpoint_id
    return {"configurable": configurable, "recursion_limit": job.recursion_limit}


class LocalExecutor:
    def __init__(
        self, factory: AgentFactory, runs: RunRepo, threads: ThreadRepo, broker: Broker
    ) -> None:
        self._factory = factory
        self._runs = runs
        self._threads = threads
        self._broker = broker
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def submit(self, job: RunJob) -> None:
        run_id = str(job.run.run_id)
        self._broker.open(run_id)
        self._broker.publish(run_id, MetadataEvent(run_id=run_id, thread_id=str(job.run.thread_id)))
        task = asyncio.create_task(self._execute(job), name=f"run-{run_id}")
        self._tasks[job.run.run_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.run.run_id, None))

    async def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a run of this process and wait (briefly) until its end is recorded.

        Waiting matters: the caller reads the run's status next (``POST /runs/{id}/cancel``)
        or deletes the thread, which must not race the run's last checkpoint writes.
        """
        task = self._tasks.get(run_id)
        if task is None:
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        return True

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, job: RunJob) -> None:
        run_id = str(job.run.run_id)
        publish = self._broker.publish
        status: RunStatus = "error"
        error: str | None = None
        # Off the path to the first token; awaited before the final status is written.
        marking = asyncio.create_task(self._runs.mark_running(job.run.run_id))
        try:
            graph, _ = self._factory.graph(job.assistant_config)
            config = run_config(job)
            graph_input: dict[str, Any] | None = None
            if job.input_messages is not None:
                graph_input = {"messages": job.input_messages}
                for message in job.input_messages:
                    publish(run_id, MessageUpsert(message=message_to_dict(message)))
            elif not (await graph.aget_state(config)).next:
                # ``null`` continues a paused run; with nothing paused (e.g. a fresh thread)
                # there is nothing to do (LangGraph would raise EmptyInputError).
                status = "success"
                return
            seen: set[str] = set()
            interrupted = False
            async for item in graph.astream(
                graph_input, config, stream_mode=["messages", "updates"]
            ):
                mode, payload = cast(tuple[str, Any], item)
                if mode == "messages":
                    chunk = payload[0]
                    if not isinstance(chunk, AIMessageChunk):
                        continue
                    message_id = chunk.id or run_id
                    if message_id not in seen:
                        seen.add(message_id)
                        publish(run_id, MessageUpsert(message=chunk_start(chunk, message_id)))
                    elif isinstance(chunk.content, str) and chunk.content:
                        publish(run_id, MessageDelta(id=message_id, delta=chunk.content))
                    continue
                for node, update in payload.items():
                    if node == "__interrupt__":
                        interrupted = True
                        continue
                    if node.startswith("__") or not isinstance(update, dict):
                        continue
                    produced: list[BaseMessage] = update.get("messages") or []
                    for done in produced:
                        if done.id:
                            seen.add(done.id)
                        publish(run_id, MessageUpsert(message=message_to_dict(done)))
            status = "interrupted" if interrupted else "success"
        except asyncio.CancelledError:
            status = "cancelled"
            publish(run_id, ErrorEvent(status_code=499, message="The run was cancelled"))
        except Exception as exc:
            code, safe_message = public_error(exc)
            if code >= 500 and code not in (502, 503, 504):
                log.exception("run %s failed", run_id)
            error = safe_message
            publish(run_id, ErrorEvent(status_code=code, message=safe_message))
        finally:
            # Record the outcome before telling clients: one who saw `end` may start the next
            # run on this thread at once, and must not get a 409 from this one.
            try:
                await asyncio.shield(self._finish(job, status, error, marking))
            except asyncio.CancelledError:
                pass  # cancelled again while recording: the shielded write still completes
            except Exception:
                log.exception("could not record the end of run %s", run_id)
            publish(run_id, EndEvent(status=status))
            self._broker.close(run_id)

    async def _finish(
        self, job: RunJob, status: RunStatus, error: str | None, marking: asyncio.Task[None]
    ) -> None:
        await asyncio.wait([marking])
        if not marking.cancelled() and marking.exception() is not None:
            log.warning("could not mark run %s running: %r", job.run.run_id, marking.exception())
        await self._runs.set_status(job.run.run_id, status, error)
        await self._threads.touch(job.run.thread_id)
