"""Attachments: files a ChatKit user attaches, fed to Loom's ingest for the thread.

Both ChatKit upload strategies work:

* direct: ``POST /chatkit/upload`` (multipart, field ``file``) answers the ``Attachment``;
* two-phase: ``attachments.create`` answers an ``Attachment`` whose ``upload_descriptor``
  points at ``POST /chatkit/attachments/{id}/upload`` (multipart, field ``file``).

Sizes and types are checked when the file arrives (413 / 415: only what ``POST /ingest``
takes: text, Markdown, HTML, PDF, DOCX). The bytes wait in ``chatkit_attachment`` until a
user message carries the attachment; that turn ingests them into the thread's namespace
(``thread:<id>``) before its run starts, so the retrieval tool and the RAG bot of that
thread find them. ``attachments.delete`` removes the file and the documents it became.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
)
from psycopg.types.json import Jsonb
from pydantic import AnyUrl, TypeAdapter

from loom.db.types import Pool
from loom.errors import BadRequest, UnsupportedMediaType
from loom.protocols.chatkit.context import ChatKitContext
from loom.retrieval.ingest import IngestService, Target
from loom.retrieval.loaders import Upload, clean_filename, declared_kind
from loom.storage.namespaces import namespace
from loom.storage.threads import Thread

ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
UPLOAD_PATH = "chatkit/attachments/{id}/upload"


def new_attachment_id() -> str:
    return f"atc_{uuid.uuid4().hex}"


def _thread_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class AttachmentRepo:
    """The ``chatkit_attachment`` rows of one user at a time."""

    def __init__(self, pool: Pool, ingest: IngestService) -> None:
        self._pool = pool
        self._ingest = ingest

    async def _row(self, attachment_id: str, user_id: str) -> dict[str, Any]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT data, content, documents FROM chatkit_attachment"
                " WHERE attachment_id = %s AND user_id = %s",
                (attachment_id, user_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError("Attachment not found")
        return row

    async def load(self, attachment_id: str, user_id: str) -> Attachment:
        return ATTACHMENT.validate_python((await self._row(attachment_id, user_id))["data"])

    async def save(self, attachment: Attachment, user_id: str) -> None:
        """Insert or update; an id that is someone else's is "not found"."""
        data = attachment.model_dump(mode="json")
        thread_id = _thread_uuid(attachment.thread_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO chatkit_attachment (attachment_id, user_id, thread_id, data)"
                " SELECT %(id)s, %(user)s, t.thread_id, %(data)s"
                " FROM (SELECT 1) one LEFT JOIN thread t"
                "   ON t.thread_id = %(thread)s AND t.user_id = %(user)s"
                " ON CONFLICT (attachment_id) DO UPDATE"
                "   SET data = excluded.data,"
                "       thread_id = coalesce(excluded.thread_id, chatkit_attachment.thread_id)"
                "   WHERE chatkit_attachment.user_id = excluded.user_id"
                " RETURNING attachment_id",
                {"id": attachment.id, "user": user_id, "thread": thread_id, "data": Jsonb(data)},
            )
            if await cur.fetchone() is None:
                raise NotFoundError("Attachment not found")

    async def delete(self, attachment_id: str, user_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM chatkit_attachment WHERE attachment_id = %s AND user_id = %s",
                (attachment_id, user_id),
            )

    def check_declared(self, name: str, mime_type: str, size: int) -> None:
        """What ``attachments.create`` announces must be something ingest takes."""
        limit = self._ingest.settings.ingest_max_file_bytes
        if size < 0:
            raise BadRequest(f"{name}: a size cannot be negative")
        if size > limit:  # announced, not sent: a bad value, not a body too large
            raise BadRequest(f"{name}: {size} bytes is over the limit of {limit}")
        if declared_kind(name, mime_type) is None:
            raise UnsupportedMediaType(
                f"{name}: only text, Markdown, HTML, PDF and DOCX files can be attached"
            )

    async def receive(
        self,
        context: ChatKitContext,
        filename: str | None,
        content_type: str | None,
        content: bytes,
        attachment_id: str | None = None,
    ) -> Attachment:
        """Store an uploaded file (a new attachment, or the bytes of a created one)."""
        name = clean_filename(filename, 0)
        # A missing or foreign attachment is 404 whatever the file is.
        existing = (
            None if attachment_id is None else await self.load(attachment_id, context.user_id)
        )
        upload = Upload(name, content_type, io.BytesIO(content), len(content))
        # 413 / 415 now, not at the first message; the bytes count in today's upload quota
        await self._ingest.check([upload], charge_to=context.user_id)
        mime = (content_type or "application/octet-stream").split(";", 1)[0].strip()
        attachment: Attachment
        if existing is not None:
            attachment = existing.model_copy(update={"upload_descriptor": None})
        else:
            attachment = FileAttachment(id=new_attachment_id(), name=name, mime_type=mime)
        await self.save(attachment, context.user_id)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE chatkit_attachment SET content = %s"
                " WHERE attachment_id = %s AND user_id = %s",
                (content, attachment.id, context.user_id),
            )
        return attachment

    async def ingest_into(self, thread: Thread, attachment_ids: list[str], user_id: str) -> None:
        """Ingest these attachments into the thread's documents (once per thread)."""
        key = str(thread.thread_id)
        for attachment_id in attachment_ids:
            row = await self._row(attachment_id, user_id)
            if key in (row["documents"] or {}):
                continue
            content = row["content"]
            if content is None:
                raise UnsupportedMediaType(f"{row['data'].get('name')}: the file was not uploaded")
            data = bytes(content)
            attachment = ATTACHMENT.validate_python(row["data"])
            upload = Upload(attachment.name, attachment.mime_type, io.BytesIO(data), len(data))
            results = await self._ingest.ingest(
                Target("thread", thread.thread_id, user_id), [upload]
            )
            ids = [i for r in results for i in r.ids]
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE chatkit_attachment"
                    " SET documents = documents || jsonb_build_object(%s::text, %s::jsonb)"
                    " WHERE attachment_id = %s AND user_id = %s",
                    (key, Jsonb(ids), attachment_id, user_id),
                )

    async def forget(self, attachment_id: str, user_id: str) -> None:
        """Delete the file and the documents it became (the row goes with the metadata)."""
        row = await self._row(attachment_id, user_id)
        for thread_id, ids in (row["documents"] or {}).items():
            await self._ingest.store.delete_ids(namespace("thread", uuid.UUID(thread_id)), ids)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE chatkit_attachment SET content = NULL, documents = '{}'::jsonb"
                " WHERE attachment_id = %s AND user_id = %s",
                (attachment_id, user_id),
            )


class LoomAttachmentStore(AttachmentStore[ChatKitContext]):
    """ChatKit's attachment hooks over :class:`AttachmentRepo`."""

    def __init__(self, repo: AttachmentRepo) -> None:
        self._repo = repo

    def generate_attachment_id(self, mime_type: str, context: ChatKitContext) -> str:
        return new_attachment_id()

    async def create_attachment(
        self, input: AttachmentCreateParams, context: ChatKitContext
    ) -> Attachment:
        self._repo.check_declared(input.name, input.mime_type, input.size)
        attachment_id = self.generate_attachment_id(input.mime_type, context)
        url = context.base_url.rstrip("/") + "/" + UPLOAD_PATH.format(id=attachment_id)
        return FileAttachment(
            id=attachment_id,
            name=clean_filename(input.name, 0),
            mime_type=input.mime_type,
            upload_descriptor=AttachmentUploadDescriptor(url=AnyUrl(url), method="POST"),
        )

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        await self._repo.forget(attachment_id, context.user_id)
