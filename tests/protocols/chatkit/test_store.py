"""Loom's ChatKit store against the cases of chatkit-python's own store tests (ordering,
cursors, upsert, delete, not found), rewritten for this store: thread ids are Loom thread ids
(UUIDs), and another user's thread is "not found" for every method (the upstream cases only
expect an empty item list there)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    ImageAttachment,
    InferenceOptions,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
)
from chatkit.widgets import Card, Text
from pydantic import AnyUrl

from loom.app import open_app_state
from loom.protocols.chatkit import build_server
from loom.protocols.chatkit.context import ChatKitContext
from loom.protocols.chatkit.store import ChatKitStore
from tests.conftest import make_settings

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
async def store(database_url: str) -> AsyncIterator[ChatKitStore]:
    settings = make_settings(database_url)
    async with AsyncExitStack() as stack:
        state = await open_app_state(settings, stack)
        yield build_server(state).loom_store


def user() -> ChatKitContext:
    return ChatKitContext(user_id=f"user-{uuid.uuid4().hex[:8]}")


def make_thread(
    created_at: datetime | None = None, title: str | None = "Test Thread"
) -> ThreadMetadata:
    return ThreadMetadata(
        id=str(uuid.uuid4()),
        title=title,
        created_at=created_at or datetime.now(),
        metadata={"test": "test"},
    )


def user_message(thread_id: str, item_id: str, text: str, at: datetime) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
        thread_id=thread_id,
        created_at=at,
    )


def make_items(thread_id: str) -> list[ThreadItem]:
    now = datetime.now()
    first = UserMessageItem(
        id="msg_100000",
        content=[UserMessageTextContent(text="Hello!")],
        attachments=[
            FileAttachment(
                id="file_1", mime_type="text/plain", name="test.txt", metadata={"source": "test"}
            )
        ],
        inference_options=InferenceOptions(),
        thread_id=thread_id,
        created_at=now,
    )
    answer = AssistantMessageItem(
        id="msg_000001",
        content=[AssistantMessageContent(text="Hi there!")],
        thread_id=thread_id,
        created_at=now + timedelta(seconds=1),
    )
    widget = WidgetItem(
        id="widget_1",
        thread_id=thread_id,
        created_at=now + timedelta(seconds=2),
        widget=Card(children=[Text(value="Title", weight="medium"), Text(value="test")]),
    )
    return [first, answer, widget]


async def test_save_and_load_thread_metadata(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    loaded = await store.load_thread(thread.id, ctx)
    assert (loaded.id, loaded.title, loaded.metadata) == (thread.id, thread.title, thread.metadata)
    assert loaded.status == thread.status


async def test_null_title(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread(title=None)
    await store.save_thread(thread, ctx)
    loaded = await store.load_thread(thread.id, ctx)
    assert loaded.title is None and loaded.metadata == {"test": "test"}


async def test_update_thread_metadata(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    thread.title = "Updated Title"
    thread.metadata = {"test": "changed"}
    await store.save_thread(thread, ctx)
    loaded = await store.load_thread(thread.id, ctx)
    assert (loaded.title, loaded.metadata) == ("Updated Title", {"test": "changed"})


async def test_save_and_load_thread_items(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    items = make_items(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    loaded = await store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert loaded.data == items and not loaded.has_more


async def test_save_and_load_file(store: ChatKitStore) -> None:
    ctx = user()
    file = FileAttachment(id=f"file_{uuid.uuid4().hex}", mime_type="text/plain", name="test.txt")
    await store.save_attachment(file, ctx)
    assert await store.load_attachment(file.id, ctx) == file


async def test_save_and_load_image(store: ChatKitStore) -> None:
    ctx = user()
    image = ImageAttachment(
        id=f"image_{uuid.uuid4().hex}",
        mime_type="image/png",
        name="test.png",
        preview_url=AnyUrl("https://example.com/test.png"),
        metadata={"source": "test"},
    )
    await store.save_attachment(image, ctx)
    assert await store.load_attachment(image.id, ctx) == image


async def test_load_threads_cursors_both_orders(store: ChatKitStore) -> None:
    ctx = user()
    now = datetime.now()
    threads = [make_thread(created_at=now + timedelta(seconds=i)) for i in range(3)]
    for thread in threads:
        await store.save_thread(thread, ctx)
    ids = [t.id for t in threads]

    page1 = await store.load_threads(limit=2, after=None, order="asc", context=ctx)
    assert [t.id for t in page1.data] == ids[:2]
    assert page1.has_more is True and page1.after == ids[1]
    page2 = await store.load_threads(limit=2, after=page1.data[-1].id, order="asc", context=ctx)
    assert [t.id for t in page2.data] == ids[2:]
    assert page2.has_more is False and not page2.after

    desc = await store.load_threads(limit=2, after=None, order="desc", context=ctx)
    assert [t.id for t in desc.data] == ids[::-1][:2] and desc.has_more
    rest = await store.load_threads(limit=2, after=desc.after, order="desc", context=ctx)
    assert [t.id for t in rest.data] == [ids[0]] and not rest.has_more
    # Only the caller's threads.
    assert (await store.load_threads(10, None, "asc", user())).data == []


async def test_thread_items_ordering(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    now = datetime.now()
    for i, text in enumerate("ABC"):
        item = user_message(thread.id, f"msg{i + 1}", text, now + timedelta(seconds=i))
        await store.add_thread_item(thread.id, item, ctx)
    asc = await store.load_thread_items(thread.id, None, 3, "asc", ctx)
    desc = await store.load_thread_items(thread.id, None, 3, "desc", ctx)
    assert [i.id for i in asc.data] == ["msg1", "msg2", "msg3"]
    assert [i.id for i in desc.data] == ["msg3", "msg2", "msg1"]


async def test_thread_items_cursor(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    now = datetime.now()
    for i in range(5):
        item = user_message(thread.id, f"msg{i}", str(i), now + timedelta(seconds=i))
        await store.add_thread_item(thread.id, item, ctx)
    after = await store.load_thread_items(thread.id, "msg1", 3, "asc", ctx)
    assert [i.id for i in after.data] == ["msg2", "msg3", "msg4"]
    assert after.has_more is False and not after.after
    first = await store.load_thread_items(thread.id, None, 2, "asc", ctx)
    assert [i.id for i in first.data] == ["msg0", "msg1"]
    assert first.has_more is True and first.after == "msg1"
    back = await store.load_thread_items(thread.id, "msg3", 2, "desc", ctx)
    assert [i.id for i in back.data] == ["msg2", "msg1"] and back.has_more


async def test_save_item_upserts(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    now = datetime.now()
    answer = AssistantMessageItem(id="msg_000001", content=[], thread_id=thread.id, created_at=now)
    widget = WidgetItem(
        id="widget_1",
        thread_id=thread.id,
        created_at=now + timedelta(seconds=1),
        widget=Card(children=[Text(value="Test")]),
    )
    await store.add_thread_item(thread.id, answer, ctx)
    await store.add_thread_item(thread.id, widget, ctx)

    answer.content = [AssistantMessageContent(text="This is an assistant message.")]
    await store.save_item(thread.id, answer, ctx)
    loaded = await store.load_item(thread.id, answer.id, ctx)
    assert isinstance(loaded, AssistantMessageItem)
    assert loaded.content[0] == AssistantMessageContent(text="This is an assistant message.")
    await store.save_item(thread.id, widget, ctx)
    assert isinstance(await store.load_item(thread.id, widget.id, ctx), WidgetItem)
    # Upserting keeps the item's place.
    listed = await store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert [i.id for i in listed.data] == [answer.id, widget.id]
    # save_item of a new id adds it.
    late = user_message(thread.id, "msg_late", "late", now + timedelta(seconds=5))
    await store.save_item(thread.id, late, ctx)
    assert (await store.load_item(thread.id, "msg_late", ctx)) == late


async def test_delete_item_thread_and_attachment(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    items = make_items(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    for gone in (items[1].id, items[2].id):
        await store.delete_thread_item(thread.id, gone, ctx)
        with pytest.raises(NotFoundError):
            await store.load_item(thread.id, gone, ctx)
    await store.delete_thread_item(thread.id, "msg_never_there", ctx)  # no-op
    listed = await store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert [i.id for i in listed.data] == [items[0].id]

    await store.delete_thread(thread.id, ctx)
    with pytest.raises(NotFoundError):
        await store.load_thread(thread.id, ctx)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(thread.id, None, 10, "asc", ctx)

    file = FileAttachment(id=f"file_{uuid.uuid4().hex}", mime_type="text/plain", name="a.txt")
    await store.save_attachment(file, ctx)
    await store.delete_attachment(file.id, ctx)
    with pytest.raises(NotFoundError):
        await store.load_attachment(file.id, ctx)


async def test_not_found(store: ChatKitStore) -> None:
    ctx, thread = user(), make_thread()
    await store.save_thread(thread, ctx)
    with pytest.raises(NotFoundError):
        await store.load_item(thread.id, "does_not_exist", ctx)
    for missing in (str(uuid.uuid4()), "thr_not_a_uuid"):
        with pytest.raises(NotFoundError):
            await store.load_thread(missing, ctx)
        with pytest.raises(NotFoundError):
            await store.load_thread_items(missing, None, 10, "asc", ctx)
        with pytest.raises(NotFoundError):
            await store.delete_thread(missing, ctx)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_missing", ctx)


async def test_isolation_by_user(store: ChatKitStore) -> None:
    owner, other = user(), user()
    thread = make_thread()
    await store.save_thread(thread, owner)
    items = make_items(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, owner)
    assert (await store.load_thread(thread.id, owner)).title == thread.title

    calls: list[Any] = [
        store.load_thread(thread.id, other),
        store.load_thread_items(thread.id, None, 10, "asc", other),
        store.load_item(thread.id, items[0].id, other),
        store.add_thread_item(thread.id, items[0], other),
        store.save_item(thread.id, items[0], other),
        store.delete_thread_item(thread.id, items[0].id, other),
        store.delete_thread(thread.id, other),
        store.add_feedback(thread.id, [items[0].id], "positive", other),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            await call
    # Saving someone else's thread id neither takes it over nor changes it.
    hijack = thread.model_copy(update={"title": "mine now"})
    with pytest.raises(NotFoundError):
        await store.save_thread(hijack, other)
    assert (await store.load_thread(thread.id, owner)).title == thread.title
    assert (await store.load_thread_items(thread.id, None, 10, "asc", owner)).data == items

    file = FileAttachment(id=f"file_{uuid.uuid4().hex}", mime_type="text/plain", name="a.txt")
    await store.save_attachment(file, owner)
    with pytest.raises(NotFoundError):
        await store.load_attachment(file.id, other)
    with pytest.raises(NotFoundError):
        await store.save_attachment(file, other)
    await store.delete_attachment(file.id, other)  # nothing of the owner's goes
    assert await store.load_attachment(file.id, owner) == file


async def test_ids(store: ChatKitStore) -> None:
    ctx = user()
    thread_id = store.generate_thread_id(ctx)
    assert str(uuid.UUID(thread_id)) == thread_id  # a Loom thread id
    thread = make_thread()
    prefixes = {"message": "msg_", "tool_call": "tc_", "task": "tsk_", "workflow": "wf_"}
    for kind, prefix in prefixes.items():
        first = store.generate_item_id(kind, thread, ctx)  # type: ignore[arg-type]
        assert first.startswith(prefix)
        assert first != store.generate_item_id(kind, thread, ctx)  # type: ignore[arg-type]
