"""HTTP routes of the ChatKit protocol.

* ``POST /chatkit``: every ChatKit request (JSON ``{"type", "params", "metadata"}``); streaming
  operations answer ``text/event-stream`` (``data: <event JSON>`` lines), the others JSON.
* ``POST /chatkit/upload``: direct attachment upload (multipart field ``file``).
* ``POST /chatkit/attachments/{attachment_id}/upload``: the upload URL of a two-phase
  attachment (``attachments.create``).
* ``GET /threads/{thread_id}/feedback``: the ``items.feedback`` given on a thread, for native
  API clients.

All authenticated like every Loom route (``CurrentUser``). A stream's first event is produced
before the response starts, so a request that fails at once (missing or foreign thread, an
item that is not a user message, ...) still gets its HTTP status.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from chatkit.server import StreamingResult
from chatkit.types import (
    Attachment,
    ChatKitReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsRetryAfterItemReq,
    UserMessageItem,
    is_streaming_req,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from loom import sse
from loom.api.deps import AppState, CurrentUser, OwnThread, State
from loom.api.openapi import errors, event_stream
from loom.api.paging import PageQuery, paged
from loom.errors import BadRequest
from loom.limits import StreamSlot
from loom.protocols.chatkit.assistants import AssistantChooser
from loom.protocols.chatkit.attachments import AttachmentRepo
from loom.protocols.chatkit.context import ChatKitContext
from loom.protocols.chatkit.errors import http_error
from loom.protocols.chatkit.schema import request_body, upload_body
from loom.protocols.chatkit.server import LoomChatKitServer
from loom.protocols.chatkit.store import ChatKitStore

router = APIRouter(tags=["chatkit"])
uploads = APIRouter(tags=["chatkit"])

REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)


def build_server(state: AppState) -> LoomChatKitServer:
    """The ChatKit server over the app's services."""
    runtime = state.runtime
    attachments = AttachmentRepo(runtime.pool, runtime.ingest)
    store = ChatKitStore(
        pool=runtime.pool,
        threads=runtime.threads,
        state=state.state,
        chooser=AssistantChooser(runtime.assistants, runtime.factory),
        attachments=attachments,
    )
    return LoomChatKitServer(
        store=store,
        attachments=attachments,
        runs=state.runs,
        state=state.state,
        heartbeat_seconds=runtime.settings.stream_heartbeat_seconds,
    )


def _server(request: Request, state: State) -> LoomChatKitServer:
    # One server per app state (built from it on first use, kept beside it on the app).
    cached: tuple[AppState, LoomChatKitServer] | None = getattr(
        request.app.state, "loom_chatkit", None
    )
    if cached is None or cached[0] is not state:
        cached = (state, build_server(state))
        request.app.state.loom_chatkit = cached
    return cached[1]


Server = Annotated[LoomChatKitServer, Depends(_server)]

_PROTOCOL_DOC = {
    **event_stream(
        "Streaming operations: Server-Sent Events (data: ThreadStreamEvent); "
        "the others: their JSON result",
        json_too=True,
    ),
    **errors(400, 404, 409, 413, 415),
}
_UPLOAD_DOC = errors(400, 404, 413, 415)


def _json_ints(body: bytes) -> bytes:
    """The body with integral numbers written as integers: JSON Schema's ``integer`` takes
    ``5.0``, strict validation (which refuses ``true`` for an integer, as the OpenAPI document
    does) would not. Invalid JSON is left for the validator to refuse. (The standard library's
    parser: integers of any size stay exact.)"""

    def walk(node: Any) -> Any:
        if isinstance(node, float) and node.is_integer():
            return int(node)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    try:
        return json.dumps(walk(json.loads(body)), allow_nan=False).encode()
    except (ValueError, RecursionError):  # not JSON, NaN, or nested too deep: refused next
        return body


async def _preflight(server: LoomChatKitServer, request: Any, context: ChatKitContext) -> None:
    """Checks the library makes only once the stream has started (a thread is created, say)."""
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        for attachment_id in request.params.input.attachments:
            await server.loom_store.load_attachment(attachment_id, context)
    if isinstance(request, ThreadsRetryAfterItemReq):
        item = await server.loom_store.load_item(
            request.params.thread_id, request.params.item_id, context
        )
        if not isinstance(item, UserMessageItem):
            raise BadRequest("threads.retry_after_item needs the id of a user message")


async def _chain(
    first: bytes, rest: AsyncIterator[bytes], slot: StreamSlot | None
) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        if slot is not None:
            await slot.release()


@router.post("/chatkit", responses=_PROTOCOL_DOC, openapi_extra=request_body())
async def chatkit(request: Request, user: CurrentUser, server: Server) -> Response:
    """ChatKit's single endpoint (``ChatKitServer.process``)."""
    body = await request.body()
    slot: StreamSlot | None = None
    try:
        parsed = REQUEST.validate_json(_json_ints(body), strict=True)  # as the document says
        context = ChatKitContext.of(user.user_id, parsed.metadata, str(request.base_url))
        await _preflight(server, parsed, context)
        if is_streaming_req(parsed):  # over the open-streams limit: 429 before anything
            slot = context.stream_slot = await server.stream_slot(user.user_id)
        result = await server.process(body, context)
        if isinstance(result, StreamingResult):
            chunks = aiter(result)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = b""
            return sse.response(_chain(first, chunks, slot))
        return Response(result.json, media_type="application/json")
    except Exception as exc:
        if slot is not None:
            await slot.release()
        return http_error(exc)


def _attachment_json(attachment: Attachment) -> Response:
    body = attachment.model_dump_json(exclude_none=True, context={"exclude_metadata": True})
    return Response(body, media_type="application/json")


async def _upload(
    request: Request, user_id: str, server: LoomChatKitServer, attachment_id: str | None
) -> Response:
    try:
        try:
            form = await request.form(max_files=1, max_fields=8)
        except MultiPartException as exc:
            raise BadRequest(f"Invalid multipart body: {exc.message}") from exc
        except StarletteHTTPException as exc:  # Starlette's own wrapping of the same
            raise BadRequest(f"Invalid multipart body: {exc.detail}") from exc
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise BadRequest("Send the file as the multipart field 'file'")
            if set(form.keys()) != {"file"} or len(form.getlist("file")) != 1:
                raise BadRequest("Send one multipart field, 'file', and nothing else")
            content = await file.read()
            context = ChatKitContext(user_id=user_id, base_url=str(request.base_url))
            attachment = await server.attachments.receive(
                context, file.filename, file.content_type, content, attachment_id
            )
        finally:
            await form.close()
        return _attachment_json(attachment)
    except Exception as exc:
        return http_error(exc)


@uploads.post("/chatkit/upload", responses=_UPLOAD_DOC, openapi_extra=upload_body())
async def direct_upload(request: Request, user: CurrentUser, server: Server) -> Response:
    """Direct upload (``uploadStrategy: {type: "direct", uploadUrl}``): the ``Attachment``."""
    return await _upload(request, user.user_id, server, None)


@uploads.post(
    "/chatkit/attachments/{attachment_id}/upload",
    responses=_UPLOAD_DOC,
    openapi_extra=upload_body(),
)
async def two_phase_upload(
    attachment_id: str, request: Request, user: CurrentUser, server: Server
) -> Response:
    """The bytes of an attachment made by ``attachments.create``; answers the ``Attachment``."""
    return await _upload(request, user.user_id, server, attachment_id)


class FeedbackOut(BaseModel):
    item_id: str
    message_id: str | None
    item_type: str | None
    kind: str
    created_at: datetime
    updated_at: datetime


@router.get("/threads/{thread_id}/feedback", response_model=list[FeedbackOut], tags=["threads"])
async def thread_feedback(
    request: Request, response: Response, page: PageQuery, thread: OwnThread, server: Server
) -> list[FeedbackOut]:
    """Feedback given through ChatKit (``items.feedback``) on the thread's items, oldest first
    (paged: ``Link`` header); an item of a message has the message's id."""
    found = await server.loom_store.feedback(thread, page)
    return paged(request, response, found, FeedbackOut.model_validate)


__all__ = ["build_server", "router", "uploads"]
