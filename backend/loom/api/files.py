"""The files uploaded to a thread or an assistant (``POST /ingest``): list and delete.

A file is the set of retrieval chunks that carry its name in their metadata; deleting it
deletes them. Only the owner of the thread or assistant sees or deletes its files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Request, Response
from pydantic import BaseModel

from loom.api.deps import Ingest, OwnAssistant, OwnThread
from loom.api.paging import PageQuery, paged
from loom.api.routing import SlashRouter
from loom.errors import NotFound
from loom.storage.namespaces import namespace
from loom.storage.paging import PageRequest

router = SlashRouter(tags=["files"])

FileName = Annotated[str, Path(min_length=1, max_length=255)]


class StoredFile(BaseModel):
    filename: str
    content_type: str | None
    chunks: int
    created_at: datetime


class Deleted(BaseModel):
    filename: str
    chunks: int


async def _list(
    request: Request, response: Response, page: PageRequest, ingest: Ingest, ns: str
) -> list[StoredFile]:
    found = await ingest.files(ns, page)
    return paged(request, response, found, StoredFile.model_validate)


async def _delete(ingest: Ingest, ns: str, filename: str) -> Deleted:
    removed = await ingest.delete(ns, {"filename": filename})
    if removed == 0:
        raise NotFound("File not found")
    return Deleted(filename=filename, chunks=removed)


@router.get("/threads/{thread_id}/files", response_model=list[StoredFile])
async def thread_files(
    request: Request, response: Response, page: PageQuery, thread: OwnThread, ingest: Ingest
) -> list[StoredFile]:
    """The thread's files, oldest first (paged: ``Link`` header)."""
    return await _list(request, response, page, ingest, namespace("thread", thread.thread_id))


@router.delete("/threads/{thread_id}/files/{filename}", response_model=Deleted)
async def delete_thread_file(thread: OwnThread, filename: FileName, ingest: Ingest) -> Deleted:
    return await _delete(ingest, namespace("thread", thread.thread_id), filename)


@router.get("/assistants/{assistant_id}/files", response_model=list[StoredFile])
async def assistant_files(
    request: Request, response: Response, page: PageQuery, assistant: OwnAssistant, ingest: Ingest
) -> list[StoredFile]:
    """The assistant's files, oldest first (paged: ``Link`` header)."""
    ns = namespace("assistant", assistant.assistant_id)
    return await _list(request, response, page, ingest, ns)


@router.delete("/assistants/{assistant_id}/files/{filename}", response_model=Deleted)
async def delete_assistant_file(
    assistant: OwnAssistant, filename: FileName, ingest: Ingest
) -> Deleted:
    return await _delete(ingest, namespace("assistant", assistant.assistant_id), filename)
