"""The ``api_key`` table: personal API keys, stored as a SHA-256 of the key.

A key is ``loom_sk_`` plus 43 URL-safe characters (256 random bits): too much entropy for a
slow hash to matter, so a plain SHA-256 is what is kept, and looking a key up is one index
probe. The key itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from pydantic import BaseModel

from loom.db.types import Pool
from loom.storage.paging import Page, PageRequest, Position, keyset, page_of

API_KEY_PREFIX = "loom_sk_"
# last_used_at is written at most this often per key (not on every request).
TOUCH_SECONDS = 60


class ApiKey(BaseModel):
    key_id: uuid.UUID
    user_id: str
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None = None


_COLUMNS = "key_id, user_id, name, hint, created_at, last_used_at"


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(self, user_id: str, name: str) -> tuple[ApiKey, str]:
        """A new key for ``user_id``: its record and the secret (never stored)."""
        secret = new_secret()
        hint = f"{secret[: len(API_KEY_PREFIX) + 4]}...{secret[-4:]}"
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO api_key (key_id, user_id, name, hint, key_hash)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (uuid.uuid4(), user_id, name, hint, key_hash(secret)),
            )
            row = await cur.fetchone()
        assert row is not None
        return ApiKey.model_validate(row), secret

    async def list_own(self, user_id: str) -> list[ApiKey]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM api_key WHERE user_id = %s ORDER BY created_at",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [ApiKey.model_validate(r) for r in rows]

    async def page_own(self, user_id: str, request: PageRequest) -> Page[ApiKey]:
        """The user's keys, oldest first, a page at a time."""
        where, order, params = keyset("created_at", "key_id", request, descending=False)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM api_key WHERE user_id = %(user)s AND {where}{order}",
                {"user": user_id, **params},
            )
            rows = await cur.fetchall()
        keys = [ApiKey.model_validate(r) for r in rows]
        return page_of(keys, request, lambda k: Position(k.created_at, str(k.key_id)))

    async def delete(self, user_id: str, key_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM api_key WHERE key_id = %s AND user_id = %s", (key_id, user_id)
            )
            return cur.rowcount > 0

    async def lookup(self, secret: str) -> ApiKey | None:
        """The key with this secret (its ``last_used_at`` refreshed), or ``None``."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM api_key WHERE key_hash = %s", (key_hash(secret),)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            key = ApiKey.model_validate(row)
            await conn.execute(
                "UPDATE api_key SET last_used_at = now() WHERE key_id = %s AND"
                " (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s))",
                (key.key_id, TOUCH_SECONDS),
            )
        return key
