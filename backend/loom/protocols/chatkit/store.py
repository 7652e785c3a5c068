"""ChatKit's ``Store`` for Loom: a ChatKit thread is a Loom thread.

Id mapping: a ChatKit thread id is the Loom thread's id (its UUID as a string), in both
directions: ``threads.create`` makes a Loom thread row under a new UUID, and every Loom thread
of the caller (made by ``POST /threads``, Loom's UI, ...) is a ChatKit thread too. The title is
the thread's ``name`` (an empty name is no title), ChatKit's thread ``metadata`` is the thread's
``metadata``; the status and image domains ChatKit adds live in ``chatkit_thread``.

Items live in ``chatkit_item``, ordered and rendered by the thread's LangGraph messages (see
:mod:`loom.protocols.chatkit.timeline`): the user and assistant messages of a native run show
in ``items.list`` where they are in the thread. Item ids of messages are the message ids.

Every method answers for the context's user only: another user's thread, item or attachment
is ``NotFoundError``, exactly like a missing one (the router answers 404 for both).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import (
    ActiveStatus,
    Attachment,
    FeedbackKind,
    Page,
    ThreadItem,
    ThreadMetadata,
    ThreadStatus,
)
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from loom.db.types import Pool
from loom.protocols.chatkit import render
from loom.protocols.chatkit.assistants import AssistantChooser
from loom.protocols.chatkit.attachments import AttachmentRepo
from loom.protocols.chatkit.context import ChatKitContext
from loom.protocols.chatkit.timeline import Snapshot, StoredItem, place
from loom.runs.state import ThreadStateService
from loom.storage import paging
from loom.storage.paging import PageRequest, Position, keyset, page_of
from loom.storage.threads import Thread, ThreadRepo

_PREFIXES: dict[str, str] = {
    "message": "msg",
    "tool_call": "tc",
    "task": "tsk",
    "workflow": "wf",
    "attachment": "atc",
    "sdk_hidden_context": "shcx",
}
_STATUS: TypeAdapter[Any] = TypeAdapter(ThreadStatus)
_ITEM_COLUMNS = "item_id, seq, kind, message_id, seen, deleted, data, created_at"


def thread_uuid(thread_id: str) -> uuid.UUID:
    """The Loom thread id of a ChatKit thread id (anything else is not found)."""
    try:
        return uuid.UUID(thread_id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFoundError("Thread not found") from exc


def paginate(items: list[Any], after: str | None, limit: int, order: str) -> Page[Any]:
    """One page of ``items`` (ids in ``.id``) after the item with id ``after``."""
    ordered = items if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        index = next((i for i, x in enumerate(ordered) if x.id == after), None)
        if index is None:
            return Page(data=[], has_more=False, after=None)
        start = index + 1
    limit = max(1, limit)
    chunk = ordered[start : start + limit]
    has_more = start + limit < len(ordered)
    return Page(data=chunk, has_more=has_more, after=chunk[-1].id if has_more and chunk else None)


class ChatKitStore(Store[ChatKitContext]):
    def __init__(
        self,
        *,
        pool: Pool,
        threads: ThreadRepo,
        state: ThreadStateService,
        chooser: AssistantChooser,
        attachments: AttachmentRepo,
    ) -> None:
        self._pool = pool
        self._threads = threads
        self._state = state
        self._chooser = chooser
        self._attachments = attachments

    # -- ids ----------------------------------------------------------------------------------

    def generate_thread_id(self, context: ChatKitContext) -> str:
        return str(uuid.uuid4())

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: ChatKitContext
    ) -> str:
        return f"{_PREFIXES.get(item_type, item_type)}_{uuid.uuid4().hex}"

    # -- threads ------------------------------------------------------------------------------

    async def own_thread(self, thread_id: str, context: ChatKitContext) -> Thread:
        """The Loom thread behind a ChatKit thread id, if the caller owns it."""
        thread = await self._threads.get_own(context.user_id, thread_uuid(thread_id))
        if thread is None:
            raise NotFoundError("Thread not found")
        return thread

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        thread = await self.own_thread(thread_id, context)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT created_at, status, allowed_image_domains FROM chatkit_thread"
                " WHERE thread_id = %s",
                (thread.thread_id,),
            )
            extra = await cur.fetchone()
        return _metadata(thread, extra)

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        tid = thread_uuid(thread.id)
        name = thread.title or ""
        existing = await self._threads.get_own(context.user_id, tid)
        if existing is not None:
            await self._threads.update(
                context.user_id, tid, name, existing.assistant_id, thread.metadata
            )
        else:
            assistant_id = await self._chooser.for_new_thread(context)
            try:
                await self._threads.create(
                    context.user_id, name, assistant_id, thread.metadata, thread_id=tid
                )
            except pg_errors.UniqueViolation as exc:  # someone else's thread id
                raise NotFoundError("Thread not found") from exc
        status = thread.status.model_dump(mode="json")
        domains = thread.allowed_image_domains
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO chatkit_thread (thread_id, created_at, status, allowed_image_domains)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (thread_id) DO UPDATE"
                " SET status = excluded.status,"
                "     allowed_image_domains = excluded.allowed_image_domains",
                (tid, thread.created_at, Jsonb(status), Jsonb(domains) if domains else None),
            )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: ChatKitContext
    ) -> Page[ThreadMetadata]:
        direction: Literal["ASC", "DESC"] = "ASC" if order == "asc" else "DESC"
        comparison = ">" if direction == "ASC" else "<"
        select = (
            "SELECT t.thread_id, t.name, t.metadata, t.assistant_id, t.user_id,"
            " t.created_at AS loom_created_at, t.updated_at,"
            " coalesce(c.created_at, t.created_at) AS created_at,"
            " c.status, c.allowed_image_domains"
            " FROM thread t LEFT JOIN chatkit_thread c ON c.thread_id = t.thread_id"
            " WHERE t.user_id = %(user)s"
        )
        params: dict[str, Any] = {"user": context.user_id, "limit": max(1, limit) + 1}
        if after is not None:
            try:
                params["after"] = uuid.UUID(after)
            except ValueError:
                return Page(data=[], has_more=False, after=None)
            select += (
                f" AND (coalesce(c.created_at, t.created_at), t.thread_id) {comparison}"
                " (SELECT coalesce(c2.created_at, t2.created_at), t2.thread_id"
                "  FROM thread t2 LEFT JOIN chatkit_thread c2 ON c2.thread_id = t2.thread_id"
                "  WHERE t2.thread_id = %(after)s AND t2.user_id = %(user)s)"
            )
        select += (
            f" ORDER BY coalesce(c.created_at, t.created_at) {direction},"
            f" t.thread_id {direction} LIMIT %(limit)s"
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(select.encode(), params)
            rows = await cur.fetchall()
        has_more = len(rows) > max(1, limit)
        rows = rows[: max(1, limit)]
        data = [_metadata(_thread_of(r), r) for r in rows]
        return Page(data=data, has_more=has_more, after=data[-1].id if has_more else None)

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        """Delete the Loom thread: its runs stop, its checkpoints, documents and items go."""
        thread = await self.own_thread(thread_id, context)
        await self._state.delete_thread(context.user_id, thread)

    # -- items --------------------------------------------------------------------------------

    async def _rows(self, thread_id: uuid.UUID) -> list[StoredItem]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM chatkit_item WHERE thread_id = %s ORDER BY seq",
                (thread_id,),
            )
            rows = await cur.fetchall()
        return [StoredItem(**r) for r in rows]

    async def _snapshot(self, thread: Thread) -> tuple[Snapshot, list[StoredItem]]:
        """The thread's messages and its item rows, with an item for every message."""
        snapshot = Snapshot(await self._state.get_state(thread))
        rows = await self._rows(thread.thread_id)
        stored = {r.item_id for r in rows}
        now = datetime.now(UTC)
        missing = [
            snapshot.derive(e, str(thread.thread_id), now)
            for e in snapshot.expected()
            if e.item_id not in stored
        ]
        unseen = [r.item_id for r in rows if not r.seen and snapshot.has(r.message_id)]
        if not missing and not unseen:
            return snapshot, rows
        async with self._pool.connection() as conn, conn.transaction():
            for item in missing:
                await self._write(conn, thread.thread_id, item, seen=True, overwrite=False)
            if unseen:
                await conn.execute(
                    "UPDATE chatkit_item SET seen = true"
                    " WHERE thread_id = %s AND item_id = ANY(%s)",
                    (thread.thread_id, unseen),
                )
        return snapshot, await self._rows(thread.thread_id)

    @staticmethod
    async def _write(
        conn: Any, thread_id: uuid.UUID, item: ThreadItem, *, seen: bool, overwrite: bool
    ) -> None:
        conflict = (
            "DO UPDATE SET data = excluded.data, kind = excluded.kind,"
            " message_id = excluded.message_id, deleted = false,"
            " seen = chatkit_item.seen OR excluded.seen"
            if overwrite
            else "DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO chatkit_item"
            " (thread_id, item_id, kind, message_id, seen, data, created_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id, item_id) {conflict}",
            (
                thread_id,
                item.id,
                item.type,
                render.backing_message(item.type, item.id),
                seen,
                Jsonb(item.model_dump(mode="json")),
                item.created_at,
            ),
        )

    async def items(self, thread: Thread) -> list[ThreadItem]:
        """Every listed item of the thread, oldest first."""
        snapshot, rows = await self._snapshot(thread)
        tid = str(thread.thread_id)
        return [snapshot.refresh(row, tid) for row in place(rows, snapshot)]

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: ChatKitContext,
    ) -> Page[ThreadItem]:
        thread = await self.own_thread(thread_id, context)
        return paginate(await self.items(thread), after, limit, order)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: ChatKitContext
    ) -> None:
        thread = await self.own_thread(thread_id, context)
        # Messages a native run wrote get their items first: a new item goes after them.
        snapshot, _ = await self._snapshot(thread)
        seen = snapshot.has(render.backing_message(item.type, item.id))
        async with self._pool.connection() as conn:
            await self._write(conn, thread.thread_id, item, seen=seen, overwrite=True)

    async def save_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        await self.add_thread_item(thread_id, item, context)

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> ThreadItem:
        thread = await self.own_thread(thread_id, context)
        for item in await self.items(thread):
            if item.id == item_id:
                return item
        raise NotFoundError("Item not found")

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: ChatKitContext
    ) -> None:
        """Delete an item. One that shows a message still in the thread is kept as deleted
        (so it is not made again from the message); the message itself stays."""
        thread = await self.own_thread(thread_id, context)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE chatkit_item SET deleted = true"
                " WHERE thread_id = %s AND item_id = %s AND message_id IS NOT NULL",
                (thread.thread_id, item_id),
            )
            await conn.execute(
                "DELETE FROM chatkit_item"
                " WHERE thread_id = %s AND item_id = %s AND message_id IS NULL",
                (thread.thread_id, item_id),
            )

    # -- feedback -----------------------------------------------------------------------------

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], kind: FeedbackKind, context: ChatKitContext
    ) -> None:
        thread = await self.own_thread(thread_id, context)
        known = {item.id for item in await self.items(thread)}
        if any(i not in known for i in item_ids):
            raise NotFoundError("Item not found")
        async with self._pool.connection() as conn, conn.transaction():
            for item_id in dict.fromkeys(item_ids):
                await conn.execute(
                    "INSERT INTO chatkit_feedback (thread_id, item_id, user_id, kind)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (thread_id, item_id)"
                    " DO UPDATE SET kind = excluded.kind, updated_at = now()",
                    (thread.thread_id, item_id, context.user_id, kind),
                )

    async def feedback(self, thread: Thread, request: PageRequest) -> paging.Page[dict[str, Any]]:
        """The feedback given on the thread's items, oldest first, a page at a time."""
        where, order, params = keyset(
            "f.created_at", "f.item_id", request, descending=False, cast="text"
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT f.item_id, i.message_id, i.kind AS item_type, f.kind,"
                " f.created_at, f.updated_at"
                " FROM chatkit_feedback f LEFT JOIN chatkit_item i"
                "   ON i.thread_id = f.thread_id AND i.item_id = f.item_id"
                f" WHERE f.thread_id = %(thread)s AND {where}{order}",
                {"thread": thread.thread_id, **params},
            )
            rows = await cur.fetchall()
        return page_of(rows, request, lambda r: Position(r["created_at"], r["item_id"]))

    # -- attachments --------------------------------------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: ChatKitContext) -> None:
        await self._attachments.save(attachment, context.user_id)

    async def load_attachment(self, attachment_id: str, context: ChatKitContext) -> Attachment:
        return await self._attachments.load(attachment_id, context.user_id)

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        await self._attachments.delete(attachment_id, context.user_id)


def _thread_of(row: dict[str, Any]) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        name=row["name"],
        user_id=row["user_id"],
        metadata=row["metadata"],
        created_at=row["loom_created_at"],
        updated_at=row["updated_at"],
    )


def _metadata(thread: Thread, extra: dict[str, Any] | None) -> ThreadMetadata:
    extra = extra or {}
    return ThreadMetadata(
        id=str(thread.thread_id),
        title=thread.name or None,
        created_at=extra.get("created_at") or thread.created_at,
        status=_STATUS.validate_python(extra["status"]) if extra.get("status") else ActiveStatus(),
        allowed_image_domains=extra.get("allowed_image_domains"),
        metadata=dict(thread.metadata),
    )
