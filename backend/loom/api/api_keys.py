"""``/api-keys``: a signed-in user's personal API keys (create, list, revoke).

A key is shown once, in the answer that creates it. Keys are managed with the user's own
sign-in (cookie, JWT or OIDC), never with another key: a leaked key cannot mint more.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loom.api.deps import ApiKeys, CurrentUser, parse_id
from loom.api.openapi import errors
from loom.api.paging import PageQuery, paged
from loom.api.routing import SlashRouter
from loom.auth import User
from loom.errors import Forbidden, NotFound
from loom.storage.api_keys import ApiKey
from loom.validation import storable

router = SlashRouter(prefix="/api-keys", tags=["api keys"])


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=256)

    @field_validator("name")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value, "the name")  # type: ignore[no-any-return]


class ApiKeyOut(BaseModel):
    id: str
    name: str
    hint: str = Field(description="The key's first and last characters")
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=str(key.key_id),
            name=key.name,
            hint=key.hint,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, never again")


def _signed_in(user: User) -> None:
    if user.api_key_id is not None:
        raise Forbidden("API keys are managed with your sign-in, not with an API key")


@router.post("", response_model=NewApiKeyOut, responses=errors(403))
async def create_api_key(body: ApiKeyIn, user: CurrentUser, keys: ApiKeys) -> NewApiKeyOut:
    _signed_in(user)
    key, secret = await keys.create(user.user_id, body.name)
    return NewApiKeyOut(**ApiKeyOut.of(key).model_dump(), key=secret)


@router.get("", response_model=list[ApiKeyOut])
async def list_api_keys(
    request: Request, response: Response, page: PageQuery, user: CurrentUser, keys: ApiKeys
) -> list[ApiKeyOut]:
    """The caller's keys, oldest first (paged: ``Link`` header)."""
    return paged(request, response, await keys.page_own(user.user_id, page), ApiKeyOut.of)


@router.delete("/{key_id}", responses=errors(403))
async def revoke_api_key(key_id: str, user: CurrentUser, keys: ApiKeys) -> dict[str, str]:
    _signed_in(user)
    if not await keys.delete(user.user_id, parse_id(key_id, "API key")):
        raise NotFound("API key not found")
    return {"status": "ok"}
