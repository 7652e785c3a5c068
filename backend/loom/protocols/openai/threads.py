"""``/v1/threads`` and their messages: an Assistants thread is a Loom thread.

Its ``metadata`` is the thread row's; its messages are its LangGraph messages (created with
``update_state``, listed from the thread's state), so the same conversation can go on in the
native API (``/runs/stream``) or the UI. A thread made here has no assistant until its first
run (see :mod:`.runner`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from openai.types.beta import Thread as ThreadObject
from openai.types.beta import ThreadDeleted
from openai.types.beta.threads import MessageDeleted

from loom.errors import Conflict
from loom.storage.threads import Thread

from . import ids
from .conversation import (
    add_messages,
    ensure_idle,
    find_message,
    message_objects,
    snapshot,
    thread_name,
    visible_indices,
)
from .deps import ClientUser, Core, CoreDep, OwnThread
from .knowledge import check_resources, resources_wire
from .runner import settle_thread
from .wire import (
    MessageCreate,
    MessageUpdate,
    Order,
    ThreadCreate,
    ThreadUpdate,
    epoch,
    page,
    paginate,
    respond,
    wire_metadata,
)

router = APIRouter(prefix="/v1/threads", tags=["openai assistants"])


async def thread_object(core: Core, thread: Thread) -> ThreadObject:
    resources = await core.store.thread_resources(thread.thread_id)
    return ThreadObject.model_validate(
        {
            "id": ids.wire("thread", thread.thread_id),
            "object": "thread",
            "created_at": epoch(thread.created_at),
            "metadata": wire_metadata(thread.metadata),
            "tool_resources": resources_wire(resources),
        }
    )


async def create(core: Core, user: ClientUser, body: ThreadCreate | None) -> Thread:
    """A new Loom thread (no assistant yet) with its first messages."""
    body = body or ThreadCreate()
    resources = await check_resources(core, user.user_id, body.tool_resources)
    thread = await core.threads.create(
        user.user_id, thread_name(body.messages), None, body.metadata or {}
    )
    if resources:
        await core.store.save_thread_resources(thread.thread_id, resources)
    await add_messages(core, user.user_id, thread, body.messages or [])
    return thread


@router.post("")
async def create_thread(
    user: ClientUser, core: CoreDep, body: ThreadCreate | None = None
) -> JSONResponse:
    return respond(await thread_object(core, await create(core, user, body)))


@router.get("/{thread_id}")
async def get_thread(thread: OwnThread, core: CoreDep) -> JSONResponse:
    return respond(await thread_object(core, thread))


@router.post("/{thread_id}")
async def modify_thread(
    body: ThreadUpdate, thread: OwnThread, user: ClientUser, core: CoreDep
) -> JSONResponse:
    given = body.model_fields_set
    if "tool_resources" in given:
        resources = await check_resources(core, user.user_id, body.tool_resources)
        await core.store.save_thread_resources(thread.thread_id, resources)
    if "metadata" in given:
        updated = await core.threads.update(
            user.user_id, thread.thread_id, thread.name, thread.assistant_id, body.metadata or {}
        )
        thread = updated or thread
    return respond(await thread_object(core, thread))


@router.delete("/{thread_id}")
async def delete_thread(thread: OwnThread, user: ClientUser, core: CoreDep) -> JSONResponse:
    await core.state.delete_thread(user.user_id, thread)
    deleted = ThreadDeleted(
        id=ids.wire("thread", thread.thread_id), object="thread.deleted", deleted=True
    )
    return respond(deleted)


# -- messages ---------------------------------------------------------------------------------


@router.post("/{thread_id}/messages")
async def create_message(
    body: MessageCreate, thread: OwnThread, user: ClientUser, core: CoreDep
) -> JSONResponse:
    await ensure_idle(core, thread)
    [added] = await add_messages(core, user.user_id, thread, [body])
    messages, _ = await snapshot(core, thread)
    index = next((i for i, m in enumerate(messages) if m.get("id") == added["id"]), None)
    if index is None:  # the thread changed under the request (deleted, rewound)
        raise Conflict("The thread changed while the message was added; try again")
    [message] = await message_objects(core, thread, messages, [index])
    return respond(message)


@router.get("/{thread_id}/messages")
async def list_messages(
    thread: OwnThread,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
    run_id: str | None = None,
) -> JSONResponse:
    await settle_thread(core, thread)
    messages, _ = await snapshot(core, thread)
    indices = visible_indices(messages)
    if run_id is not None:
        wanted = ids.parse("run", run_id)
        records = await core.store.messages(
            thread.thread_id, [str(messages[i].get("id")) for i in indices]
        )
        indices = [
            i
            for i in indices
            if (r := records.get(str(messages[i].get("id")))) is not None and r.run_id == wanted
        ]
    chosen, more = paginate(
        indices,
        lambda i: ids.message_wire(str(messages[i].get("id"))),
        order=order,
        limit=limit,
        after=after,
        before=before,
    )
    return respond(page(await message_objects(core, thread, messages, chosen), more))


@router.get("/{thread_id}/messages/{message_id}")
async def get_message(message_id: str, thread: OwnThread, core: CoreDep) -> JSONResponse:
    messages, index = await find_message(core, thread, message_id)
    [message] = await message_objects(core, thread, messages, [index])
    return respond(message)


@router.post("/{thread_id}/messages/{message_id}")
async def modify_message(
    message_id: str, body: MessageUpdate, thread: OwnThread, core: CoreDep
) -> JSONResponse:
    messages, index = await find_message(core, thread, message_id)
    if "metadata" in body.model_fields_set:
        await core.store.save_message(
            thread.thread_id, str(messages[index].get("id")), metadata=body.metadata or {}
        )
    [message] = await message_objects(core, thread, messages, [index])
    return respond(message)


@router.delete("/{thread_id}/messages/{message_id}")
async def delete_message(message_id: str, thread: OwnThread, core: CoreDep) -> JSONResponse:
    messages, index = await find_message(core, thread, message_id)
    await ensure_idle(core, thread)
    key = str(messages[index].get("id"))
    await core.state.update_state(thread, [{"type": "remove", "id": key, "content": ""}])
    await core.store.delete_message(thread.thread_id, key)
    deleted = MessageDeleted(id=message_id, object="thread.message.deleted", deleted=True)
    return respond(deleted)
