"""``/ingest``: upload files into an assistant's or a thread's documents.

``POST /ingest`` takes what OpenGPTs clients send: a multipart body with one or more ``files``
parts and a ``config`` part holding JSON ``{"configurable": {"assistant_id": ...}}`` or
``{"configurable": {"thread_id": ...}}`` (with both, the documents go to the assistant). The
caller must own that assistant and thread; any other id answers 404.

The body is read as a stream, spooled to temporary files, and cut off with 413 as soon as it
passes ``LOOM_INGEST_MAX_REQUEST_BYTES`` (this route is exempt from the app-wide
``LOOM_MAX_BODY_BYTES``). Each file must stay within ``LOOM_INGEST_MAX_FILE_BYTES`` (413).

* Default (synchronous): answers ``200`` once everything is stored, with one entry per file:
  ``[{"filename", "content_type", "chunks", "ids"}]``.
* ``?async=true``: checks sizes and types first (413/415 are still answered right away), then
  answers ``202`` with a job (``Location: /ingest/<job_id>``) that ``GET /ingest/{job_id}``
  reports: ``{"job_id", "status": "pending"|"running"|"done"|"error", "namespace",
  "files_total", "files_done", "chunks_total", "chunks_done", "error", "files",
  "created_at", "updated_at"}``. Jobs live in Postgres, so any server process can answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from loom.api.deps import Assistants, CurrentUser, Ingest, SettingsDep, Threads, parse_id
from loom.api.routing import SlashRouter
from loom.auth import User
from loom.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from loom.retrieval.ingest import Target
from loom.retrieval.jobs import IngestJob, JobStatus
from loom.retrieval.loaders import Upload, clean_filename

router = SlashRouter(prefix="/ingest", tags=["ingest"])

MAX_FILES = 1000


class FileOut(BaseModel):
    filename: str
    content_type: str
    chunks: int
    ids: list[str]


class JobFileOut(BaseModel):
    filename: str
    content_type: str
    chunks: int


class IngestJobOut(BaseModel):
    job_id: str
    status: JobStatus
    namespace: str
    files_total: int
    files_done: int
    chunks_total: int
    chunks_done: int
    error: str | None
    files: list[JobFileOut] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: IngestJob) -> IngestJobOut:
        return cls(
            job_id=str(job.job_id),
            status=job.status,
            namespace=job.namespace,
            files_total=job.files_total,
            files_done=job.files_done,
            chunks_total=job.chunks_total,
            chunks_done=job.chunks_done,
            error=job.error,
            files=[JobFileOut.model_validate(f) for f in job.files] if job.files else None,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


MAX_CONFIG_BYTES = 64 * 1024
_TARGET_ID = {"type": "string", "format": "uuid"}
_MULTIPART_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files", "config"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "config": {
                            "type": "object",
                            "description": "JSON text: the assistant or the thread to ingest into",
                            "required": ["configurable"],
                            "properties": {
                                "configurable": {
                                    "type": "object",
                                    "properties": {
                                        "assistant_id": _TARGET_ID,
                                        "thread_id": _TARGET_ID,
                                    },
                                    "anyOf": [
                                        {"required": ["assistant_id"]},
                                        {"required": ["thread_id"]},
                                    ],
                                }
                            },
                        },
                    },
                },
                # The config part is JSON text (a plain field, or a part of its own).
                "encoding": {"config": {"contentType": "application/json"}},
            }
        },
    }
}


async def read_form(request: Request, limit: int) -> FormData:
    """Parse the multipart body, refusing (413) as soon as it passes ``limit`` bytes."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("POST /ingest takes a multipart/form-data body")
    too_large = f"Request body too large (limit {limit} bytes)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large)

    async def limited() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise PayloadTooLarge(too_large)
            yield chunk

    parser = MultiPartParser(request.headers, limited(), max_files=MAX_FILES, max_fields=32)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"Invalid multipart body: {exc.message}") from exc


def _uploads(form: FormData) -> list[Upload]:
    uploads: list[Upload] = []
    for name, value in form.multi_items():
        if not isinstance(value, UploadFile) or name == "config":
            continue
        size = value.size
        if size is None:
            value.file.seek(0, 2)
            size = value.file.tell()
        value.file.seek(0)
        uploads.append(
            Upload(
                filename=clean_filename(value.filename, len(uploads)),
                content_type=value.content_type,
                file=value.file,
                size=size,
            )
        )
    return uploads


def _parse_config(raw: object) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise InvalidInput(
            'The multipart field \'config\' is required: {"configurable": {"assistant_id": ...}}'
        )
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("The field 'config' is not valid JSON") from exc
    configurable = config.get("configurable", config) if isinstance(config, dict) else None
    if not isinstance(configurable, dict):
        raise InvalidInput("The field 'config' must be a JSON object with 'configurable'")
    return configurable


def _id(value: object, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(f"{what} not found") from exc


async def resolve_target(
    configurable: dict[str, Any], user: User, threads: Threads, assistants: Assistants
) -> Target:
    """The assistant or thread to ingest into; it must be the caller's (else 404)."""
    assistant_id = configurable.get("assistant_id")
    thread_id = configurable.get("thread_id")
    if not assistant_id and not thread_id:
        raise InvalidInput("config.configurable needs an 'assistant_id' or a 'thread_id'")
    target: Target | None = None
    if thread_id:
        tid = _id(thread_id, "Thread")
        if await threads.get_own(user.user_id, tid) is None:
            raise NotFound("Thread not found")
        target = Target("thread", tid, user.user_id)
    if assistant_id:
        aid = _id(assistant_id, "Assistant")
        if await assistants.get_own(user.user_id, aid) is None:
            raise NotFound("Assistant not found")
        target = Target("assistant", aid, user.user_id)
    assert target is not None
    return target


@router.post(
    "",
    response_model=list[FileOut],
    responses={202: {"model": IngestJobOut, "description": "With ?async=true: the job"}},
    openapi_extra=_MULTIPART_SCHEMA,
)
async def ingest_files(
    request: Request,
    user: CurrentUser,
    service: Ingest,
    settings: SettingsDep,
    threads: Threads,
    assistants: Assistants,
    run_async: Annotated[
        bool, Query(alias="async", description="Answer 202 with a job to poll")
    ] = False,
) -> JSONResponse:
    """Load, split, embed and store the uploaded files (all of them or none)."""
    form = await read_form(request, settings.ingest_max_request_bytes)
    uploads = _uploads(form)
    try:
        raw = form.get("config")
        if isinstance(raw, UploadFile):  # sent as a part with a filename
            part = raw
            try:
                raw = (await part.read(MAX_CONFIG_BYTES)).decode("utf-8", "replace")
            finally:
                await part.close()  # the files are the uploads' to close; this one is read
        target = await resolve_target(_parse_config(raw), user, threads, assistants)
    except BaseException:
        await form.close()
        raise
    if run_async:
        job = await service.start_job(target, uploads, charge=True)
        body = IngestJobOut.of(job).model_dump(mode="json")
        return JSONResponse(body, status_code=202, headers={"Location": f"/ingest/{job.job_id}"})
    results = await service.ingest(target, uploads, charge=True)
    return JSONResponse(
        [
            FileOut(
                filename=r.filename, content_type=r.content_type, chunks=r.chunks, ids=r.ids
            ).model_dump(mode="json")
            for r in results
        ]
    )


@router.get("/{job_id}", response_model=IngestJobOut)
async def get_ingest_job(job_id: str, user: CurrentUser, service: Ingest) -> IngestJobOut:
    """Progress of an asynchronous ingest started by the caller."""
    job = await service.get_job(user.user_id, parse_id(job_id, "Ingest job"))
    if job is None:
        raise NotFound("Ingest job not found")
    return IngestJobOut.of(job)
