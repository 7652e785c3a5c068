"""``ChatKitServer`` for Loom: a ChatKit turn is a Loom run.

* ``respond`` (``threads.create``, ``threads.add_user_message``, ``threads.retry_after_item``):
  ingests the message's attachments into the thread, then creates a run with the user message
  (its id is the ChatKit item id) through ``RunService.create`` — queued, executed by a
  worker, streamed through the broker — and translates ``RunService.follow`` into ChatKit
  events (:mod:`loom.protocols.chatkit.stream`). Retrying after a user message that is
  already in the thread forks the LangGraph state from the checkpoint before that message
  (``config.configurable.checkpoint_id``), so the thread's head is the new branch.
* ``action`` (``threads.custom_action``): the Approve / Reject buttons of a paused tool call.
  Approve continues the run (input ``null``); reject first answers every pending call with a
  tool message saying the user rejected it (``update_state``), then continues.
* A client that goes away mid-stream (ChatKit's stop button) follows the run's
  ``on_disconnect``: ``cancel`` (the default here) stops the run and keeps the partial reply,
  in the thread's messages and as its item; ``continue`` lets the run finish.
* A failed run ends the stream with ChatKit's ``error`` event (``allow_retry`` per code,
  :mod:`loom.protocols.chatkit.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from typing import Any

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer
from chatkit.types import (
    FeedbackKind,
    StreamOptions,
    ThreadItem,
    ThreadItemReplacedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    WidgetItem,
)

from loom.errors import InvalidInput, LoomError
from loom.limits import StreamSlot
from loom.protocols.chatkit import render
from loom.protocols.chatkit.attachments import AttachmentRepo, LoomAttachmentStore
from loom.protocols.chatkit.context import ChatKitContext
from loom.protocols.chatkit.errors import stream_error, stream_error_of
from loom.protocols.chatkit.store import ChatKitStore
from loom.protocols.chatkit.stream import TurnStream
from loom.runs.events import EndEvent
from loom.runs.service import RunRequest, RunService
from loom.runs.state import ThreadStateService
from loom.storage.runs import Run
from loom.storage.threads import Thread

log = logging.getLogger("loom.chatkit")

TITLE_CHARS = 60
HISTORY_PAGE = 200
HISTORY_PAGES = 20


def title_for(item: UserMessageItem) -> str | None:
    text = " ".join(render.user_text(item).split())
    if not text:
        return None
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class LoomChatKitServer(ChatKitServer[ChatKitContext]):
    def __init__(
        self,
        *,
        store: ChatKitStore,
        attachments: AttachmentRepo,
        runs: RunService,
        state: ThreadStateService,
        heartbeat_seconds: float,
    ) -> None:
        super().__init__(store, LoomAttachmentStore(attachments))
        self.loom_store = store
        self.attachments = attachments
        self._runs = runs
        self._state = state
        self._heartbeat = heartbeat_seconds
        self._background: set[asyncio.Task[None]] = set()

    def get_stream_options(self, thread: ThreadMetadata, context: ChatKitContext) -> StreamOptions:
        return StreamOptions(allow_cancel=True)

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatKitContext
    ) -> None:
        # The turn's own generator handles a cancelled stream (see ``_follow``): the partial
        # reply goes into the thread's messages, which are the model's context; a hidden
        # note for the model is not needed. (Awaiting here would be cancelled again anyway.)
        return None

    async def stream_slot(self, user_id: str) -> StreamSlot:
        """A place among the caller's open streams, for a streaming request."""
        return await self._runs.stream_slot(user_id)

    async def add_feedback(
        self,
        thread_id: str,
        item_ids: list[str],
        feedback: FeedbackKind,
        context: ChatKitContext,
    ) -> None:
        await self.loom_store.add_feedback(thread_id, item_ids, feedback, context)

    # -- turns --------------------------------------------------------------------------------

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        try:
            loom_thread = await self.loom_store.own_thread(thread.id, context)
            run_input: dict[str, Any] | None = None
            config: dict[str, Any] | None = None
            if input_user_message is not None:
                if thread.title is None:
                    thread.title = title_for(input_user_message)
                attached = [a.id for a in input_user_message.attachments]
                await self.attachments.ingest_into(loom_thread, attached, context.user_id)
                message = {
                    "type": "human",
                    "content": render.user_text(input_user_message),
                    "id": input_user_message.id,
                }
                run_input = {"messages": [message]}
                fork = await self._fork_point(loom_thread, input_user_message.id)
                if fork is not None:
                    config = {"configurable": {"checkpoint_id": fork}}
            run = await self._start(loom_thread, run_input, config, context)
        except CustomStreamError:
            raise
        except Exception as exc:
            raise stream_error_of(exc) from None
        async for event in self._follow(run, loom_thread, TurnStream(thread.id), context):
            yield event

    async def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        if action.type not in (render.APPROVE, render.REJECT):
            raise CustomStreamError("Loom does not know this action", allow_retry=False)
        payload = action.payload if isinstance(action.payload, dict) else {}
        stream = TurnStream(thread.id)
        try:
            loom_thread = await self.loom_store.own_thread(thread.id, context)
            state = await self._state.get_state(loom_thread)
            ai = render.pending_calls(state)
            if ai is None or str(ai["id"]) != str(payload.get("message_id")):
                raise CustomStreamError("Nothing is waiting for approval", allow_retry=False)
            results = render.results_of(render.messages_of(state))
            approved = action.type == render.APPROVE
            created = sender.created_at if sender is not None else datetime.now(UTC)
            decided = render.approval_item(
                ai, "approved" if approved else "rejected", thread.id, created
            )
            events: list[ThreadStreamEvent] = [ThreadItemReplacedEvent(item=decided)]
            flow_created = await self._created_at(
                thread.id, render.workflow_id(str(ai["id"])), context
            )
            if not approved:
                answers = [
                    {
                        "type": "tool",
                        "content": render.REJECTED_RESULT,
                        "tool_call_id": call.id,
                        "name": call.name,
                        "status": "error",
                    }
                    for call in render.calls_of(ai)
                    if call.id not in results
                ]
                updated = await self._state.update_state(loom_thread, answers)
                results = render.results_of(render.messages_of(updated))
                flow = render.workflow_item(ai, results, thread.id, flow_created)
                events.append(ThreadItemReplacedEvent(item=flow))
            else:
                stream.resume(ai, results, flow_created)
            run = await self._start(loom_thread, None, None, context)
        except CustomStreamError:
            raise
        except Exception as exc:
            raise stream_error_of(exc) from None
        for event in events:
            yield event
        async for event in self._follow(run, loom_thread, stream, context):
            yield event

    async def _created_at(self, thread_id: str, item_id: str, context: ChatKitContext) -> datetime:
        try:
            return (await self.loom_store.load_item(thread_id, item_id, context)).created_at
        except Exception:
            return datetime.now(UTC)

    async def _start(
        self,
        thread: Thread,
        run_input: dict[str, Any] | None,
        config: dict[str, Any] | None,
        context: ChatKitContext,
    ) -> Run:
        request = RunRequest(
            thread_id=thread.thread_id,
            assistant_id=None,
            input=run_input,
            config=config,
            multitask_strategy="reject",
            on_disconnect=context.on_disconnect,
        )
        return await self._runs.create(context.user_id, request)

    async def _fork_point(self, thread: Thread, message_id: str) -> str | None:
        """For a message already in the thread (a retry): the checkpoint just before it was
        added, found by walking the head's ancestors; ``None`` for a new message."""
        state = await self._state.get_state(thread)
        if not any(str(m.get("id")) == message_id for m in render.messages_of(state)):
            return None
        by_id: dict[str, dict[str, Any]] = {}
        head: dict[str, Any] | None = None
        before: str | None = None
        for _ in range(HISTORY_PAGES):
            page = await self._state.history(thread, HISTORY_PAGE, before)
            for found in page:
                by_id[str(found["checkpoint_id"])] = found
            head = head or (page[0] if page else None)
            if len(page) < HISTORY_PAGE:
                break
            before = str(page[-1]["checkpoint_id"])
        entry: dict[str, Any] | None = head
        while entry is not None:
            ids = {str(m.get("id")) for m in render.messages_of(entry)}
            if message_id not in ids:
                return str(entry["checkpoint_id"])
            parent = (entry.get("parent") or {}).get("configurable", {}).get("checkpoint_id")
            entry = by_id.get(str(parent)) if parent else None
        raise InvalidInput("This message cannot be retried: its thread history is too long")

    async def _follow(
        self, run: Run, thread: Thread, stream: TurnStream, context: ChatKitContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Stream the run's events; a stream dropped before the end follows ``on_disconnect``."""
        ended = False
        batches = self._runs.follow(run.run_id, 0, self._heartbeat, context.stream_slot)
        try:
            async for batch in batches:
                for envelope in batch:
                    for event in stream.apply(envelope.event):
                        yield event
                    if isinstance(envelope.event, EndEvent):
                        ended = True
                if ended:
                    break
        finally:
            if not ended:
                self._detach(self._after_disconnect(run, thread, stream.partials(), context))
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if stream.error is not None:
            for event in stream.abandon():
                yield event
            raise stream_error(*stream.error)
        if stream.status == "interrupted":
            state = await self._state.get_state(thread)
            ai = render.pending_calls(state)
            if ai is not None:
                for event in stream.pause(ai, render.results_of(render.messages_of(state))):
                    yield event

    def _detach(self, work: Coroutine[Any, Any, None]) -> None:
        # Not awaited by the stream: a cancelled response cancels every await it makes.
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_disconnect(
        self, run: Run, thread: Thread, partials: dict[str, str], context: ChatKitContext
    ) -> None:
        """A stream dropped before the end: stop the run if the thread's policy says so.

        The reply so far is kept by the run itself (every protocol sees it, marked stopped).
        """
        if context.on_disconnect != "cancel":
            return  # the run goes on; its reply lands in the thread
        try:
            await self._runs.stop(run)
        except LoomError as exc:
            log.info("could not keep the partial reply of run %s: %s", run.run_id, exc.message)
        except Exception:
            log.exception("could not keep the partial reply of run %s", run.run_id)
