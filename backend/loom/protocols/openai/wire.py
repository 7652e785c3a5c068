"""Request bodies of the Assistants API (v2) as Loom reads them, and list pages.

Responses are the ``openai`` SDK's own models (``openai.types``), built and validated here
before they are sent, so what Loom answers is what the SDK expects. Unknown request fields
are ignored, as the SDK never sends any but its own; ``loom_tools`` is Loom's extension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from loom.validation import JSON_NUMBER, JsonInt, storable

MAX_METADATA_KEYS = 16
Temperature = Annotated[float, Field(ge=0, le=2), JSON_NUMBER]
TopP = Annotated[float, Field(ge=0, le=1), JSON_NUMBER]


def _metadata(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata must be an object of at most {MAX_METADATA_KEYS} keys")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise ValueError(
                "metadata keys are strings of at most 64 characters, values strings of at most 512"
            )
    return storable(value, "metadata")


# OpenAI's metadata: at most 16 string values, keys of at most 64 characters.
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ],
    Field(max_length=MAX_METADATA_KEYS),
]


def wire_metadata(value: Mapping[str, Any] | None) -> dict[str, str]:
    """Metadata as OpenAI's shape allows (a thread made by the native API may hold any JSON):
    the string values that fit, the others left out."""
    fits = {
        k: v
        for k, v in (value or {}).items()
        if isinstance(v, str) and len(k) <= 64 and len(v) <= 512
    }
    return dict(list(fits.items())[:MAX_METADATA_KEYS])


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")


class FileSearchResources(Body):
    vector_store_ids: list[str] | None = Field(default=None, max_length=16)
    vector_stores: list[dict[str, Any]] | None = Field(default=None, max_length=16)


class ToolResources(Body):
    code_interpreter: dict[str, Any] | None = None
    file_search: FileSearchResources | None = None


class AssistantCreate(Body):
    model: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    metadata: Metadata | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_resources: ToolResources | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: Any = None
    loom_tools: list[Any] | None = Field(default=None, max_length=64)

    _check_metadata = field_validator("metadata")(_metadata)


class AssistantUpdate(AssistantCreate):
    model: str | None = Field(default=None, min_length=1, max_length=256)  # type: ignore[assignment]


class Attachment(Body):
    file_id: str
    tools: list[dict[str, Any]] | None = None


NonEmptyText = Annotated[str, Field(min_length=1)]


class MessageCreate(Body):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, Field(min_length=1)] | Annotated[list[dict[str, Any]], Field(min_length=1)]
    )
    attachments: list[Attachment] | None = Field(default=None, max_length=20)
    metadata: Metadata | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class MessageUpdate(Body):
    metadata: Metadata | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class ThreadCreate(Body):
    messages: list[MessageCreate] | None = Field(default=None, max_length=32)
    metadata: Metadata | None = None
    tool_resources: ToolResources | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class ThreadUpdate(Body):
    metadata: Metadata | None = None
    tool_resources: ToolResources | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class RunOptions(Body):
    """What ``POST /threads/{id}/runs`` and ``POST /threads/runs`` share."""

    assistant_id: str
    model: str | None = Field(default=None, max_length=256)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    loom_tools: list[Any] | None = Field(default=None, max_length=64)
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: Any = None
    stream: StrictBool | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    max_prompt_tokens: JsonInt | None = None
    max_completion_tokens: JsonInt | None = None
    truncation_strategy: dict[str, Any] | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class RunCreate(RunOptions):
    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[MessageCreate] | None = Field(default=None, max_length=32)


class ThreadRunCreate(RunOptions):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunUpdate(Body):
    metadata: Metadata | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class ToolOutput(Body):
    tool_call_id: str
    output: str = ""


class SubmitToolOutputs(Body):
    tool_outputs: list[ToolOutput] = Field(max_length=128)
    stream: StrictBool | None = None


class ExpiresAfter(Body):
    anchor: Literal["last_active_at"]
    days: JsonInt = Field(ge=1, le=365)


class VectorStoreCreate(Body):
    name: str | None = Field(default=None, max_length=256)
    file_ids: list[str] | None = Field(default=None, max_length=500)
    metadata: Metadata | None = None
    expires_after: ExpiresAfter | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class VectorStoreUpdate(Body):
    name: str | None = Field(default=None, max_length=256)
    metadata: Metadata | None = None
    expires_after: ExpiresAfter | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class VectorStoreFileCreate(Body):
    file_id: str


class FileBatchCreate(Body):
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    files: list[dict[str, Any]] | None = Field(default=None, max_length=500)


Order = Literal["asc", "desc"]


class Page(BaseModel):
    """A list answer: ``{"object": "list", "data", "first_id", "last_id", "has_more"}``."""

    object: Literal["list"] = "list"
    data: list[Any]
    first_id: str | None
    last_id: str | None
    has_more: bool


T = TypeVar("T")


def paginate(
    items: Sequence[T],
    id_of: Callable[[T], str],
    *,
    order: Order,
    limit: int,
    after: str | None,
    before: str | None,
) -> tuple[list[T], bool]:
    """``items`` (oldest first) in ``order``, after/before the item with that id, at most
    ``limit``; and whether more follow. An unknown cursor yields nothing."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [id_of(i) for i in ordered]
    start, end = 0, len(ordered)
    if after is not None:
        if after not in ids:
            return [], False
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            return [], False
        end = ids.index(before)
    window = ordered[start:end]
    if before is not None and after is None:
        # Items just before the cursor, still in the asked order.
        return window[-limit:], len(window) > limit
    return window[:limit], len(window) > limit


def page(items: list[Any], has_more: bool) -> Page:
    ids = [getattr(i, "id", None) for i in items]
    return Page(
        data=items,
        first_id=ids[0] if ids else None,
        last_id=ids[-1] if ids else None,
        has_more=has_more,
    )


def respond(obj: BaseModel) -> JSONResponse:
    """A typed answer as JSON (the SDK's models keep their ``None`` fields, as OpenAI did)."""
    return JSONResponse(obj.model_dump(mode="json", warnings=False))


def epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None
