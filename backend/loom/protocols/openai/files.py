"""``/v1/files`` and ``/v1/vector_stores`` (with their files): what ``file_search`` searches.

Files are kept in ``openai_file`` (bytes in Postgres, at most ``LOOM_INGEST_MAX_FILE_BYTES``);
a vector store's files are ingested into its Loom collection (see :mod:`.knowledge`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from openai.types import FileDeleted, VectorStoreDeleted
from openai.types.vector_stores import VectorStoreFileDeleted

from loom.errors import InvalidInput, PayloadTooLarge
from loom.retrieval.loaders import clean_filename
from loom.storage.namespaces import namespace

from . import ids
from .deps import ClientUser, CoreDep, OwnFile, OwnStore
from .knowledge import (
    add_file,
    batch_object,
    create_store,
    file_object,
    forget_file,
    own_files,
    remove_file,
    store_file_object,
    store_object,
)
from .store import FileBatchRecord, VectorStoreFileRecord, VectorStoreRecord
from .wire import (
    FileBatchCreate,
    Order,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreUpdate,
    page,
    paginate,
    respond,
)

files_router = APIRouter(prefix="/v1/files", tags=["openai files"])
stores_router = APIRouter(prefix="/v1/vector_stores", tags=["openai files"])

Purpose = Literal["assistants", "user_data", "vision"]


# -- files ------------------------------------------------------------------------------------


@files_router.post("")
async def upload_file(
    user: ClientUser,
    core: CoreDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[Purpose, Form()],
) -> JSONResponse:
    limit = core.settings.ingest_max_file_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"The file is over the limit of {limit} bytes")
    await core.ingest.charge(user.user_id, len(content))  # today's upload quota (429)
    record = await core.store.create_file(
        user.user_id, clean_filename(file.filename, 0), purpose, content
    )
    return respond(file_object(record))


@files_router.get("")
async def list_files(
    user: ClientUser,
    core: CoreDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Order = "desc",
    after: str | None = None,
) -> JSONResponse:
    records = [f for f in await core.store.files(user.user_id) if purpose in (None, f.purpose)]
    chosen, more = paginate(
        records,
        lambda f: ids.wire("file", f.file_id),
        order=order,
        limit=limit,
        after=after and ids.wire("file", ids.parse("file", after)),
        before=None,
    )
    return respond(page([file_object(f) for f in chosen], more))


@files_router.get("/{file_id}")
async def get_file(file: OwnFile) -> JSONResponse:
    return respond(file_object(file))


@files_router.get("/{file_id}/content")
async def get_file_content(file: OwnFile, core: CoreDep) -> Response:
    content = await core.store.file_content(file.file_id)
    return Response(content, media_type="application/octet-stream")


@files_router.delete("/{file_id}")
async def delete_file(file: OwnFile, user: ClientUser, core: CoreDep) -> JSONResponse:
    used_in = await core.store.delete_file(user.user_id, file.file_id)
    await forget_file(core, file.file_id, used_in)
    return respond(FileDeleted(id=ids.wire("file", file.file_id), object="file", deleted=True))


# -- vector stores ----------------------------------------------------------------------------


@stores_router.post("")
async def create_vector_store(
    body: VectorStoreCreate, user: ClientUser, core: CoreDep
) -> JSONResponse:
    record = await create_store(
        core,
        user.user_id,
        body.name or "",
        body.metadata or {},
        body.expires_after.model_dump() if body.expires_after else None,
        body.file_ids or [],
    )
    return respond(store_object(record, await core.store.store_files([record.vector_store_id])))


@stores_router.get("")
async def list_vector_stores(
    user: ClientUser,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> JSONResponse:
    records = await core.store.stores(user.user_id)
    chosen, more = paginate(
        records,
        lambda s: ids.wire("vector_store", s.vector_store_id),
        order=order,
        limit=limit,
        after=after and ids.wire("vector_store", ids.parse("vector_store", after)),
        before=before and ids.wire("vector_store", ids.parse("vector_store", before)),
    )
    files = await core.store.store_files([s.vector_store_id for s in chosen])
    data = [
        store_object(s, [f for f in files if f.vector_store_id == s.vector_store_id])
        for s in chosen
    ]
    return respond(page(data, more))


@stores_router.get("/{vector_store_id}")
async def get_vector_store(store: OwnStore, core: CoreDep) -> JSONResponse:
    return respond(store_object(store, await core.store.store_files([store.vector_store_id])))


@stores_router.post("/{vector_store_id}")
async def modify_vector_store(
    body: VectorStoreUpdate, store: OwnStore, core: CoreDep
) -> JSONResponse:
    given = body.model_fields_set
    updated = await core.store.update_store(
        store.vector_store_id,
        (body.name or "") if "name" in given else store.name,
        (body.metadata or {}) if "metadata" in given else store.metadata,
        (body.expires_after.model_dump() if body.expires_after else None)
        if "expires_after" in given
        else store.expires_after,
    )
    return respond(store_object(updated, await core.store.store_files([store.vector_store_id])))


@stores_router.delete("/{vector_store_id}")
async def delete_vector_store(store: OwnStore, user: ClientUser, core: CoreDep) -> JSONResponse:
    ns = namespace("collection", store.vector_store_id)
    await core.store.delete_store(user.user_id, store.vector_store_id, ns)
    await core.ingest.delete(ns)
    deleted = VectorStoreDeleted(
        id=ids.wire("vector_store", store.vector_store_id),
        object="vector_store.deleted",
        deleted=True,
    )
    return respond(deleted)


@stores_router.post("/{vector_store_id}/files")
async def add_vector_store_file(
    body: VectorStoreFileCreate, store: OwnStore, user: ClientUser, core: CoreDep
) -> JSONResponse:
    [file] = await own_files(core, user.user_id, [body.file_id])
    return respond(store_file_object(await add_file(core, user.user_id, store, file)))


@stores_router.get("/{vector_store_id}/files")
async def list_vector_store_files(
    store: OwnStore,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None,
) -> JSONResponse:
    records = [
        f
        for f in await core.store.store_files([store.vector_store_id])
        if filter in (None, f.status)
    ]
    chosen, more = paginate(
        records,
        lambda f: ids.wire("file", f.file_id),
        order=order,
        limit=limit,
        after=after and ids.wire("file", ids.parse("file", after)),
        before=before and ids.wire("file", ids.parse("file", before)),
    )
    return respond(page([store_file_object(f) for f in chosen], more))


@stores_router.get("/{vector_store_id}/files/{file_id}")
async def get_vector_store_file(file_id: str, store: OwnStore, core: CoreDep) -> JSONResponse:
    wanted = ids.parse("file", file_id)
    for record in await core.store.store_files([store.vector_store_id]):
        if record.file_id == wanted:
            return respond(store_file_object(record))
    raise ids.not_found("file", file_id)


@stores_router.delete("/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(file_id: str, store: OwnStore, core: CoreDep) -> JSONResponse:
    wanted = ids.parse("file", file_id)
    if not await remove_file(core, store, wanted):
        raise ids.not_found("file", file_id)
    deleted = VectorStoreFileDeleted(
        id=ids.wire("file", wanted), object="vector_store.file.deleted", deleted=True
    )
    return respond(deleted)


# -- file batches -----------------------------------------------------------------------------


async def _batch(core: CoreDep, store: VectorStoreRecord, raw: str) -> FileBatchRecord:
    found = await core.store.batch(store.vector_store_id, ids.parse("file_batch", raw))
    if found is None:
        raise ids.not_found("file_batch", raw)
    return found


@stores_router.post("/{vector_store_id}/file_batches")
async def create_file_batch(
    body: FileBatchCreate, store: OwnStore, user: ClientUser, core: CoreDep
) -> JSONResponse:
    raw_ids = list(body.file_ids) + [str(f.get("file_id")) for f in body.files or []]
    if not raw_ids:
        raise InvalidInput("file_ids (or files) must name at least one file")
    files = await own_files(core, user.user_id, dict.fromkeys(raw_ids))
    for file in files:
        await add_file(core, user.user_id, store, file)
    batch = await core.store.create_batch(store.vector_store_id, [f.file_id for f in files])
    return respond(batch_object(batch, await core.store.store_files([store.vector_store_id])))


@stores_router.get("/{vector_store_id}/file_batches/{batch_id}")
async def get_file_batch(batch_id: str, store: OwnStore, core: CoreDep) -> JSONResponse:
    batch = await _batch(core, store, batch_id)
    return respond(batch_object(batch, await core.store.store_files([store.vector_store_id])))


@stores_router.post("/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(batch_id: str, store: OwnStore, core: CoreDep) -> JSONResponse:
    # Files are ingested when the batch is made: there is never anything left to cancel.
    batch = await _batch(core, store, batch_id)
    return respond(batch_object(batch, await core.store.store_files([store.vector_store_id])))


@stores_router.get("/{vector_store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    batch_id: str,
    store: OwnStore,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None,
) -> JSONResponse:
    batch = await _batch(core, store, batch_id)
    wanted = set(batch.file_ids)
    records: list[VectorStoreFileRecord] = [
        f
        for f in await core.store.store_files([store.vector_store_id])
        if f.file_id in wanted and filter in (None, f.status)
    ]
    chosen, more = paginate(
        records,
        lambda f: ids.wire("file", f.file_id),
        order=order,
        limit=limit,
        after=after and ids.wire("file", ids.parse("file", after)),
        before=before and ids.wire("file", ids.parse("file", before)),
    )
    return respond(page([store_file_object(f) for f in chosen], more))
