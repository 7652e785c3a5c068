"""The ``assistant`` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from loom.db.types import Pool
from loom.storage.namespaces import namespace
from loom.storage.paging import Page, PageRequest, Position, keyset, page_of


class Assistant(BaseModel):
    assistant_id: uuid.UUID
    name: str
    config: dict[str, Any]
    public: bool
    user_id: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = "assistant_id, name, config, public, user_id, created_at, updated_at"


class AssistantRepo:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self, user_id: str, name: str, config: dict[str, Any], public: bool
    ) -> Assistant:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO assistant (assistant_id, user_id, name, config, public)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (uuid.uuid4(), user_id, name, Jsonb(config), public),
            )
            row = await cur.fetchone()
        assert row is not None
        return Assistant.model_validate(row)

    async def list_own(self, user_id: str) -> list[Assistant]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM assistant WHERE user_id = %s ORDER BY updated_at DESC",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [Assistant.model_validate(r) for r in rows]

    async def list_public(self) -> list[Assistant]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM assistant WHERE public ORDER BY updated_at DESC"
            )
            rows = await cur.fetchall()
        return [Assistant.model_validate(r) for r in rows]

    async def page_own(self, user_id: str, request: PageRequest) -> Page[Assistant]:
        """The user's assistants, most recently updated first, a page at a time."""
        return await self._page("user_id = %(user)s", {"user": user_id}, request)

    async def page_public(self, request: PageRequest) -> Page[Assistant]:
        """Public assistants, most recently updated first, a page at a time."""
        return await self._page("public", {}, request)

    async def _page(
        self, condition: str, values: dict[str, Any], request: PageRequest
    ) -> Page[Assistant]:
        where, order, params = keyset("updated_at", "assistant_id", request, descending=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM assistant WHERE {condition} AND {where}{order}",
                {**values, **params},
            )
            rows = await cur.fetchall()
        found = [Assistant.model_validate(r) for r in rows]
        return page_of(found, request, lambda a: Position(a.updated_at, str(a.assistant_id)))

    async def get_visible(self, user_id: str, assistant_id: uuid.UUID) -> Assistant | None:
        """The assistant if ``user_id`` owns it or it is public."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM assistant"
                " WHERE assistant_id = %s AND (user_id = %s OR public)",
                (assistant_id, user_id),
            )
            row = await cur.fetchone()
        return Assistant.model_validate(row) if row else None

    async def get_own(self, user_id: str, assistant_id: uuid.UUID) -> Assistant | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM assistant WHERE assistant_id = %s AND user_id = %s",
                (assistant_id, user_id),
            )
            row = await cur.fetchone()
        return Assistant.model_validate(row) if row else None

    async def update(
        self,
        user_id: str,
        assistant_id: uuid.UUID,
        name: str,
        config: dict[str, Any],
        public: bool,
    ) -> Assistant | None:
        """Update an assistant the user owns; ``None`` when there is none (never an upsert)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE assistant SET name = %s, config = %s, public = %s, updated_at = now()"
                f" WHERE assistant_id = %s AND user_id = %s RETURNING {_COLUMNS}",
                (name, Jsonb(config), public, assistant_id, user_id),
            )
            row = await cur.fetchone()
        return Assistant.model_validate(row) if row else None

    async def delete(self, user_id: str, assistant_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM assistant WHERE assistant_id = %s AND user_id = %s",
                (assistant_id, user_id),
            )
            deleted = cur.rowcount > 0
            if deleted:
                await conn.execute(
                    "DELETE FROM document WHERE namespace = %s",
                    (namespace("assistant", assistant_id),),
                )
        return deleted
