"""Executing one claimed run: its graph, its events, its outcome.

The executor rebuilds everything from the run's row (input, recursion limit, checkpoint to
fork from, the assistant's config read when the run was claimed), streams the graph and
publishes typed events to the run's log. The outcome is written only while the worker still
holds the run's claim token, and before ``end`` is published: a client who saw ``end`` may
start the next run at once.

A later attempt of a run (its previous worker died or lost its lease) continues from the
run's last checkpoint: the input is applied once, and messages the previous attempt streamed
but never completed are removed from the log first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from loom.agents.config import with_overrides
from loom.agents.graphs import SINK_KEY
from loom.agents.registry import AgentFactory
from loom.agents.serialize import message_start, message_to_dict
from loom.errors import public_error
from loom.metrics import Metrics
from loom.runs.broker import Broker, Publisher
from loom.runs.events import (
    EndEvent,
    ErrorEvent,
    MessageDelta,
    MessageRemove,
    MessageUpsert,
    RunEvent,
    partial_messages,
)
from loom.runs.fence import CLAIM_KEY, LeaseLost
from loom.runs.queue import Claim, RunQueue
from loom.storage.runs import Run, RunStatus

log = logging.getLogger("loom.runs")

# Event-loop turns given to the first token of a reply before the rest of it is parsed.
FIRST_TOKEN_TURNS = 3

# Why a run's task was cancelled; decides what is written about it.
StopReason = Literal["cancel", "disconnect", "interrupt", "rollback", "lease_lost", "hand_back"]

# A thread whose assistant was deleted still runs as a plain chatbot.
FALLBACK_CONFIG: dict[str, Any] = {"configurable": {"type": "chatbot"}}


@dataclass
class RunControl:
    """Set by the worker before it cancels a run's task."""

    reason: StopReason | None = None
    settling: bool = False  # the outcome is being recorded: too late to stop


@dataclass(frozen=True)
class _Kept:
    """What recording a partial reply needs: the graph, its update node, the run's config."""

    graph: Any
    update_node: Callable[[Sequence[BaseMessage]], str]
    config: RunnableConfig


@dataclass(frozen=True)
class Outcome:
    status: RunStatus | None  # None: nothing was written (the lease was lost or handed back)
    more: bool  # the thread has queued runs waiting for this one


def stored_input(messages: list[BaseMessage] | None) -> dict[str, Any] | None:
    """How a run's input messages are kept in its row (LangChain's own round-trip format)."""
    if messages is None:
        return None
    return {"messages": [{"type": m.type, "data": m.model_dump(mode="json")} for m in messages]}


def input_messages(run: Run) -> list[BaseMessage] | None:
    if not isinstance(run.input, dict) or run.input.get("messages") is None:
        return None
    return messages_from_dict(run.input["messages"])


def run_config(run: Run, checkpoint_id: str | None) -> RunnableConfig:
    configurable: dict[str, Any] = {
        "thread_id": str(run.thread_id),
        "assistant_id": str(run.assistant_id) if run.assistant_id else None,
        "user_id": run.user_id,
        "run_id": str(run.run_id),
        CLAIM_KEY: str(run.claim_token),  # fences this attempt's checkpoint writes
    }
    if run.namespaces:
        configurable["extra_namespaces"] = list(run.namespaces)
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable, "recursion_limit": run.recursion_limit}


class _Sink:
    """A run's token sink: model text straight into its event log."""

    __slots__ = ("_open", "_publish", "first_token", "started", "tokens")

    def __init__(self, publish: Callable[[RunEvent], Awaitable[int]]) -> None:
        self._publish = publish
        # Messages streamed and not yet completed, with their text so far (kept if the run
        # stops before they are).
        self._open: dict[str, list[str]] = {}
        # For the metrics, counted here and recorded once at the run's end.
        self.started = time.monotonic()
        self.first_token: float | None = None
        self.tokens = 0

    async def text(self, message_id: str, delta: str) -> None:
        texts = self._open.get(message_id)
        if texts is not None:
            if delta:
                texts.append(delta)
                self.tokens += 1
                if self.first_token is None:
                    self.first_token = time.monotonic() - self.started
                await self._publish(MessageDelta(id=message_id, delta=delta))
            return
        if delta:
            self.tokens += 1
            if self.first_token is None:
                self.first_token = time.monotonic() - self.started
        self._open[message_id] = [delta] if delta else []
        await self._publish(MessageUpsert(message=message_start(message_id, delta), streaming=True))
        # Let the streams (and a broker's writer) send the first token now: a model answering
        # in a burst would otherwise hold it until the whole burst is parsed. A few turns of
        # the loop: a writer may wait for its connection before it can send.
        for _ in range(FIRST_TOKEN_TURNS):
            await asyncio.sleep(0)

    def done(self, message_id: str | None) -> None:
        if message_id is not None:
            self._open.pop(message_id, None)

    def partial(self) -> tuple[str, str] | None:
        """(id, text) of a reply streamed and never completed, if it has any text."""
        for message_id, texts in reversed(self._open.items()):
            text = "".join(texts)
            if text.strip():
                return message_id, text
        return None


class RunExecutor:
    def __init__(
        self,
        factory: AgentFactory,
        checkpointer: BaseCheckpointSaver[Any],
        queue: RunQueue,
        broker: Broker,
        metrics: Metrics | None = None,
    ) -> None:
        self._factory = factory
        self._checkpointer = checkpointer
        self._queue = queue
        self._broker = broker
        self._metrics = metrics

    async def execute(self, claim: Claim, publisher: Publisher, control: RunControl) -> Outcome:
        run = claim.run
        run_id = str(run.run_id)
        publish = publisher.publish
        status: RunStatus = "error"
        error: tuple[str, str] | None = None
        sink = _Sink(publish)
        kept: _Kept | None = None
        try:
            # Not only when ``attempt > 1``: a run handed back by a draining worker does not
            # count the attempt, yet its log may hold a message that attempt left half-written.
            # A run's first execution finds its log empty and reads nothing.
            if claim.fresh:
                publisher.open_empty()
            elif await publisher.open():
                for message_id in partial_messages(await self._broker.read(run_id)):
                    await publish(MessageRemove(id=message_id))
            graph, resolved = self._factory.graph(
                with_overrides(claim.assistant_config or FALLBACK_CONFIG, run.overrides)
            )
            graph_input, config = await self._start(run, claim.fresh)
            kept = _Kept(graph, resolved.agent_type.update_node, config)
            if graph_input is not None:
                for message in graph_input["messages"]:
                    await publish(MessageUpsert(message=message_to_dict(message)))
            elif not (await graph.aget_state(config)).next:
                # ``null`` continues a paused run; with nothing paused (a fresh thread, or a
                # later attempt of a run that had finished) there is nothing to do.
                status = "success"
                return await self._settle(claim, publisher, control, status, None, sink)
            interrupted = await self._stream(graph, graph_input, config, publisher, sink)
            status = "interrupted" if interrupted else "success"
        except asyncio.CancelledError:
            reason = control.reason or "cancel"
            if reason == "lease_lost":
                await _quietly(publisher.close())
                return Outcome(None, False)
            if reason == "hand_back":
                return await self._hand_back(claim, publisher)
            if reason == "interrupt":
                status = "interrupted"
                await self._keep_partial(kept, sink, publisher, "stopped")
            else:
                status = "cancelled"
                message = {
                    "cancel": "The run was cancelled",
                    "disconnect": "The run was cancelled when its client disconnected",
                    "rollback": "The run was rolled back: a newer run replaced it",
                }[reason]
                error = ("cancelled", message)
                if reason != "rollback":  # a rolled-back run leaves nothing behind
                    await self._keep_partial(kept, sink, publisher, "stopped")
        except LeaseLost:
            # Another worker may own the run now: write nothing about it.
            log.warning("run %s: lease lost, checkpoint write refused; stopping", run_id)
            await _quietly(publisher.close())
            return Outcome(None, False)
        except Exception as exc:
            code, message = public_error(exc)
            if code == "internal":
                log.exception("run %s failed", run_id)
            error = (code, message)
            await self._keep_partial(kept, sink, publisher, "failed")
        return await self._settle(claim, publisher, control, status, error, sink)

    async def _keep_partial(
        self, kept: _Kept | None, sink: _Sink, publisher: Publisher, how: str
    ) -> None:
        """A reply cut short stays in the thread, marked (``response_metadata.loom_status``
        is ``stopped`` or ``failed``): recorded as the model node's output, then published
        whole, so every protocol and the thread's state show the same message."""
        partial = sink.partial()
        if kept is None or partial is None:
            return
        message_id, text = partial
        message = AIMessage(
            content=text,
            id=message_id,
            response_metadata={"finish_reason": how, "loom_status": how},
        )
        try:
            await asyncio.shield(
                kept.graph.aupdate_state(
                    kept.config, {"messages": [message]}, as_node=kept.update_node([message])
                )
            )
        except Exception as exc:
            log.warning("could not keep the partial reply %s (%r)", message_id, exc)
            return
        sink.done(message_id)
        await _quietly(publisher.publish(MessageUpsert(message=message_to_dict(message))))

    async def _start(self, run: Run, fresh: bool) -> tuple[dict[str, Any] | None, RunnableConfig]:
        """The graph input and config of this attempt."""
        messages = input_messages(run)
        if not fresh and await self._has_checkpoints(run):
            # A previous attempt got as far as a checkpoint: continue from the thread's head.
            return None, run_config(run, None)
        checkpoint_id = run.checkpoint_id
        if run.rollback_of is not None:
            checkpoint_id = await self._before(run, run.rollback_of) or checkpoint_id
        return (
            {"messages": messages} if messages is not None else None,
            run_config(run, checkpoint_id),
        )

    async def _has_checkpoints(self, run: Run) -> bool:
        config: RunnableConfig = {"configurable": {"thread_id": str(run.thread_id)}}
        async for _ in self._checkpointer.alist(
            config, filter={"run_id": str(run.run_id)}, limit=1
        ):
            return True
        return False

    async def _before(self, run: Run, undone: Any) -> str | None:
        """The checkpoint the thread was at before run ``undone`` wrote anything.

        ``None`` when that run wrote nothing. When it started the thread (no checkpoint
        before it), the thread's checkpoints are all its own and are deleted through the
        saver, so the thread starts over empty.
        """
        config: RunnableConfig = {"configurable": {"thread_id": str(run.thread_id)}}
        earliest = None
        async for item in self._checkpointer.alist(config, filter={"run_id": str(undone)}):
            earliest = item
        if earliest is None:
            return None
        if earliest.parent_config is None:
            await self._checkpointer.adelete_thread(str(run.thread_id))
            return None
        parent = earliest.parent_config["configurable"].get("checkpoint_id")
        return str(parent) if parent else None

    async def _stream(
        self,
        graph: Any,
        graph_input: dict[str, Any] | None,
        config: RunnableConfig,
        publisher: Publisher,
        sink: _Sink,
    ) -> bool:
        """Run the graph, publishing message events; ``True`` when it paused (interrupt).

        Model text reaches the log straight from the model call (a :class:`_Sink` in the
        config); the graph's updates bring whole messages (tool results, and the finished
        reply, which replaces the streamed one).
        """
        publish = publisher.publish
        configurable = {**config.get("configurable", {}), SINK_KEY: sink}
        config = {**config, "configurable": configurable}
        interrupted = False
        async for update in graph.astream(graph_input, config, stream_mode="updates"):
            for node, values in cast(dict[str, Any], update).items():
                if node == "__interrupt__":
                    interrupted = True
                    continue
                if node.startswith("__") or not isinstance(values, dict):
                    continue
                produced: list[BaseMessage] = values.get("messages") or []
                for done in produced:
                    sink.done(done.id)
                    if done.type == "tool" and self._metrics is not None:
                        self._count_tool_error(done)
                    await publish(MessageUpsert(message=message_to_dict(done)))
        return interrupted

    async def _settle(
        self,
        claim: Claim,
        publisher: Publisher,
        control: RunControl,
        status: RunStatus,
        error: tuple[str, str] | None,
        sink: _Sink,
    ) -> Outcome:
        """Record the outcome (while the claim holds), then publish the end."""
        control.settling = True
        settled, more = await asyncio.shield(
            self._finish(claim, status, error[1] if error else None)
        )
        if settled and self._metrics is not None:
            self._metrics.run_finished(
                status, time.monotonic() - sink.started, sink.tokens, sink.first_token
            )
            if error is not None and status == "error":
                self._metrics.run_errors.labels(error[0]).inc()
        if settled:
            if error is not None:
                await _quietly(publisher.publish(ErrorEvent(code=error[0], message=error[1])))
            await _quietly(publisher.publish(EndEvent(status=status)))
        await _quietly(publisher.close())
        return Outcome(status if settled else None, more)

    def _count_tool_error(self, message: BaseMessage) -> None:
        if getattr(message, "status", None) == "error" and self._metrics is not None:
            self._metrics.tool_failed(str(getattr(message, "name", None) or "?"), message.text)

    async def _finish(
        self, claim: Claim, status: RunStatus, error: str | None
    ) -> tuple[bool, bool]:
        """``queue.finish``, retried while the lease may still be ours."""
        deadline = time.monotonic() + self._queue.lease_seconds
        delay = 0.05
        while True:
            try:
                return await self._queue.finish(claim.run_id, claim.token, status, error)
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    log.warning(
                        "could not record the end of run %s (%r); the sweeper will settle it",
                        claim.run_id,
                        exc,
                    )
                    return False, False
                log.info("recording the end of run %s failed (%r); retrying", claim.run_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _hand_back(self, claim: Claim, publisher: Publisher) -> Outcome:
        status = None
        try:
            status = await asyncio.shield(self._queue.hand_back(claim.run_id, claim.token))
        except Exception as exc:
            log.warning("could not hand run %s back (%r); its lease will lapse", claim.run_id, exc)
        if status == "cancelled":
            await _quietly(
                publisher.publish(ErrorEvent(code="cancelled", message="The run was cancelled"))
            )
            await _quietly(publisher.publish(EndEvent(status="cancelled")))
        await _quietly(publisher.close())
        return Outcome(None, status == "pending")


async def _quietly(awaitable: Any) -> None:
    """Stream writes after the outcome is recorded: a broker failure must not undo it."""
    try:
        await awaitable
    except Exception as exc:
        log.warning("could not publish to a run's stream: %r", exc)
