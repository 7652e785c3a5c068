"""``/assistants``: create, list, read, update and delete assistants."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loom.agents.config import ConfigError
from loom.api.deps import (
    Assistants,
    CurrentUser,
    Factory,
    MaybeUser,
    OwnAssistant,
    VisibleAssistant,
)
from loom.api.paging import PageQuery, paged
from loom.api.routing import SlashRouter
from loom.auth import User
from loom.errors import InvalidInput
from loom.storage.assistants import Assistant
from loom.validation import storable

router = SlashRouter(prefix="/assistants", tags=["assistants"])


class AssistantIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=256)
    config: dict[str, Any]
    public: bool = Field(default=False, strict=True)

    @field_validator("name", "config")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")


class AssistantOut(BaseModel):
    assistant_id: str
    name: str
    config: dict[str, Any]
    public: bool
    # The owner's id when the caller is the owner; null on someone else's public assistant
    # (no response shows a user id other than the caller's own).
    user_id: str | None
    updated_at: datetime

    @classmethod
    def of(cls, a: Assistant, viewer: User | None) -> AssistantOut:
        return cls(
            assistant_id=str(a.assistant_id),
            name=a.name,
            config=a.config,
            public=a.public,
            user_id=a.user_id if viewer is not None and viewer.user_id == a.user_id else None,
            updated_at=a.updated_at,
        )


def _validated(factory: Factory, body: AssistantIn) -> None:
    try:
        factory.resolve(body.config)
    except ConfigError as exc:
        raise InvalidInput(f"Invalid assistant config: {exc}") from exc


@router.post("", response_model=AssistantOut)
async def create_assistant(
    body: AssistantIn, user: CurrentUser, assistants: Assistants, factory: Factory
) -> AssistantOut:
    _validated(factory, body)
    created = await assistants.create(user.user_id, body.name, body.config, body.public)
    return AssistantOut.of(created, user)


@router.get("", response_model=list[AssistantOut])
async def list_assistants(
    request: Request, response: Response, page: PageQuery, user: CurrentUser, assistants: Assistants
) -> list[AssistantOut]:
    """The caller's assistants, most recently updated first (paged: ``Link`` header)."""
    found = await assistants.page_own(user.user_id, page)
    return paged(request, response, found, lambda a: AssistantOut.of(a, user))


@router.get("/public", response_model=list[AssistantOut])
async def list_public_assistants(
    request: Request, response: Response, page: PageQuery, user: MaybeUser, assistants: Assistants
) -> list[AssistantOut]:
    """Public assistants, most recently updated first (paged: ``Link`` header). Anyone may
    list them, without credentials (as in OpenGPTs)."""
    found = await assistants.page_public(page)
    return paged(request, response, found, lambda a: AssistantOut.of(a, user))


@router.get("/{assistant_id}", response_model=AssistantOut)
async def get_assistant(assistant: VisibleAssistant, user: CurrentUser) -> AssistantOut:
    return AssistantOut.of(assistant, user)


@router.put("/{assistant_id}", response_model=AssistantOut)
async def update_assistant(
    body: AssistantIn,
    assistant: OwnAssistant,
    user: CurrentUser,
    assistants: Assistants,
    factory: Factory,
) -> AssistantOut:
    _validated(factory, body)
    updated = await assistants.update(
        user.user_id, assistant.assistant_id, body.name, body.config, body.public
    )
    if updated is None:  # deleted in between
        raise InvalidInput("The assistant no longer exists")
    return AssistantOut.of(updated, user)


@router.delete("/{assistant_id}")
async def delete_assistant(
    assistant: OwnAssistant, user: CurrentUser, assistants: Assistants
) -> dict[str, str]:
    await assistants.delete(user.user_id, assistant.assistant_id)
    return {"status": "ok"}
