"""Files, vector stores and tool resources: what ``file_search`` searches.

A vector store is a Loom *collection*: its files are ingested by Loom's ``IngestService`` into
the namespace ``collection:<vector_store_id>``, each chunk tagged with the id of the file it came
from (that is what citations point at). A file attached to a message for ``file_search`` is
ingested into the thread's own namespace, which every run of the thread searches anyway. A run
searches the collections named in its assistant's and its thread's
``tool_resources.file_search.vector_store_ids`` that still exist and belong to the caller
(``RunRequest.namespaces``).

Ingestion is synchronous: a file is searchable (status ``completed``) when the request that
added it answers, or it is ``failed`` with the reason.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from openai.types import FileObject, VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from loom.errors import InvalidInput, LoomError
from loom.retrieval.ingest import Target
from loom.retrieval.loaders import Upload
from loom.storage.namespaces import Owner, namespace

from . import ids
from .deps import Core
from .store import (
    FileBatchRecord,
    FileRecord,
    FileStatus,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from .wire import ToolResources, wire_metadata

_FAILURE_CODES = {"unsupported_media_type": "unsupported_file", "invalid_input": "invalid_file"}


def _epoch(value: Any) -> int:
    return int(value.timestamp())


# -- tool resources ---------------------------------------------------------------------------


async def check_resources(
    core: Core, user_id: str, resources: ToolResources | None
) -> dict[str, Any]:
    """Stored form of ``tool_resources`` (``{"file_search": {"vector_store_ids": [uuid]}}``);
    inline ``vector_stores`` are created; unknown stores answer 404."""
    if resources is None:
        return {}
    if resources.code_interpreter and resources.code_interpreter.get("file_ids"):
        raise InvalidInput("code_interpreter is not supported: Loom does not run code")
    search = resources.file_search
    if search is None:
        return {}
    store_ids = [ids.parse("vector_store", raw) for raw in search.vector_store_ids or []]
    owned = await core.store.owned_stores(user_id, store_ids)
    for raw, store_id in zip(search.vector_store_ids or [], store_ids, strict=True):
        if store_id not in owned:
            raise ids.not_found("vector_store", raw)
    for spec in search.vector_stores or []:
        file_ids = spec.get("file_ids") or []
        metadata = spec.get("metadata") or {}
        if not isinstance(file_ids, list) or not isinstance(metadata, dict):
            raise InvalidInput("vector_stores entries are {file_ids: [...], metadata: {...}}")
        record = await create_store(core, user_id, "", metadata, None, file_ids)
        store_ids.append(record.vector_store_id)
    return {"file_search": {"vector_store_ids": [str(s) for s in dict.fromkeys(store_ids)]}}


def resources_wire(stored: Mapping[str, Any]) -> dict[str, Any]:
    search = stored.get("file_search") or {}
    store_ids = search.get("vector_store_ids") or []
    if not store_ids:
        return {}
    return {
        "file_search": {
            "vector_store_ids": [ids.wire("vector_store", uuid.UUID(s)) for s in store_ids]
        }
    }


async def run_namespaces(
    core: Core, user_id: str, *resources: Mapping[str, Any]
) -> tuple[str, ...]:
    """The collections a run may search: the caller's stores named in these resources."""
    wanted: list[uuid.UUID] = []
    for stored in resources:
        search = stored.get("file_search") or {}
        wanted.extend(uuid.UUID(s) for s in search.get("vector_store_ids") or [])
    owned = await core.store.owned_stores(user_id, list(dict.fromkeys(wanted)))
    return tuple(namespace("collection", s) for s in owned)


# -- files ------------------------------------------------------------------------------------


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=ids.wire("file", record.file_id),
        object="file",
        bytes=record.bytes,
        created_at=_epoch(record.created_at),
        filename=record.filename,
        purpose=record.purpose,
        status="processed",
    )


async def ingest_file(
    core: Core, user_id: str, kind: Owner, owner_id: uuid.UUID, file: FileRecord
) -> tuple[dict[str, Any] | None, int]:
    """Ingest ``file`` into an owner's namespace: (error for a failed file, bytes stored)."""
    content = await core.store.file_content(file.file_id)
    upload = Upload(
        filename=file.filename, content_type=None, file=io.BytesIO(content), size=len(content)
    )
    target = Target(kind, owner_id, user_id, metadata={"file_id": str(file.file_id)})
    try:
        results = await core.ingest.ingest(target, [upload])
    except LoomError as exc:
        return {"code": _FAILURE_CODES.get(exc.code, "server_error"), "message": exc.message}, 0
    await core.store.file_used_in(file.file_id, target.namespace)
    return None, len(content) if results else 0


async def forget_file(core: Core, file_id: uuid.UUID, namespaces: Iterable[str]) -> None:
    for ns in namespaces:
        await core.ingest.delete(ns, {"file_id": str(file_id)})


# -- vector stores ----------------------------------------------------------------------------


async def own_files(core: Core, user_id: str, raw_ids: Iterable[str]) -> list[FileRecord]:
    files = []
    for raw in raw_ids:
        record = await core.store.file(user_id, ids.parse("file", raw))
        if record is None:
            raise ids.not_found("file", raw)
        files.append(record)
    return files


async def create_store(
    core: Core,
    user_id: str,
    name: str,
    metadata: dict[str, Any],
    expires_after: dict[str, Any] | None,
    file_ids: Iterable[str],
) -> VectorStoreRecord:
    files = await own_files(core, user_id, file_ids)
    record = await core.store.create_store(user_id, name, metadata, expires_after)
    for file in files:
        await add_file(core, user_id, record, file)
    return record


async def add_file(
    core: Core, user_id: str, store: VectorStoreRecord, file: FileRecord
) -> VectorStoreFileRecord:
    """Attach ``file`` to ``store`` and ingest it (synchronously)."""
    sid = store.vector_store_id
    pending = await core.store.save_store_file(sid, file.file_id, "in_progress")
    if pending is None:
        raise ids.not_found("vector_store", ids.wire("vector_store", sid))
    error, used = await ingest_file(core, user_id, "collection", sid, file)
    status: FileStatus = "failed" if error else "completed"
    saved = await core.store.save_store_file(sid, file.file_id, status, error, used)
    if saved is None:  # the store or the file was deleted meanwhile: leave nothing behind
        await forget_file(core, file.file_id, [namespace("collection", sid)])
        raise ids.not_found("vector_store", ids.wire("vector_store", sid))
    return saved


async def remove_file(core: Core, store: VectorStoreRecord, file_id: uuid.UUID) -> bool:
    ns = namespace("collection", store.vector_store_id)
    removed = await core.store.remove_store_file(store.vector_store_id, file_id)
    if removed:
        await forget_file(core, file_id, [ns])
        await core.store.file_not_used_in(file_id, ns)
    return removed


def store_file_object(record: VectorStoreFileRecord) -> VectorStoreFile:
    return VectorStoreFile.model_validate(
        {
            "id": ids.wire("file", record.file_id),
            "object": "vector_store.file",
            "created_at": _epoch(record.created_at),
            "vector_store_id": ids.wire("vector_store", record.vector_store_id),
            "status": record.status,
            "last_error": record.last_error,
            "usage_bytes": record.usage_bytes,
        }
    )


def file_counts(files: Iterable[VectorStoreFileRecord]) -> dict[str, int]:
    statuses = [f.status for f in files]
    counts = {s: statuses.count(s) for s in ("in_progress", "completed", "failed", "cancelled")}
    return {**counts, "total": len(statuses)}


def batch_object(
    record: FileBatchRecord, files: Iterable[VectorStoreFileRecord]
) -> VectorStoreFileBatch:
    wanted = set(record.file_ids)
    counts = file_counts(f for f in files if f.file_id in wanted)
    counts["cancelled"] += len(wanted) - counts["total"]  # removed from the store since
    counts["total"] = len(wanted)
    return VectorStoreFileBatch.model_validate(
        {
            "id": ids.wire("file_batch", record.batch_id),
            "object": "vector_store.files_batch",
            "created_at": _epoch(record.created_at),
            "vector_store_id": ids.wire("vector_store", record.vector_store_id),
            "status": "in_progress" if counts["in_progress"] else "completed",
            "file_counts": counts,
        }
    )


def store_object(record: VectorStoreRecord, files: list[VectorStoreFileRecord]) -> VectorStore:
    counts = file_counts(files)
    return VectorStore.model_validate(
        {
            "id": ids.wire("vector_store", record.vector_store_id),
            "object": "vector_store",
            "created_at": _epoch(record.created_at),
            "last_active_at": _epoch(record.last_active_at),
            "name": record.name,
            "metadata": wire_metadata(record.metadata),
            "status": "in_progress" if counts["in_progress"] else "completed",
            "usage_bytes": sum(f.usage_bytes for f in files),
            "file_counts": counts,
            "expires_after": record.expires_after,
            "expires_at": None,
        }
    )
