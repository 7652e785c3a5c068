"""Searching a user's threads by title and by the words of their messages.

Message text lives in checkpoints, so it is indexed (``thread_search_message``, one
``tsvector`` per human or AI message) and the index is brought up to date lazily: a search
first indexes the user's threads whose ``updated_at`` moved since they were last indexed
(a run ended, the state was updated, the thread was renamed), reading each one's current
state through LangGraph. Nothing on the run path writes to it.

Matching: every word of the query must be the start of a word of one message (``simple``
configuration: no stemming, any language), or the query is part of the thread's title.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from langchain_core.messages import BaseMessage

from loom.agents.state import messages_of
from loom.db.types import Pool
from loom.runs.state import ThreadStateService
from loom.storage.paging import Page, PageRequest, keyset, page_of
from loom.storage.threads import Thread, ThreadRepo, position

# Threads indexed per search at most (most recently changed first); the rest on later ones.
REINDEX_BATCH = 200
MAX_TEXT = 100_000
_WORD = re.compile(r"\w+")

_COLUMNS = "t.thread_id, t.assistant_id, t.name, t.user_id, t.metadata, t.created_at, t.updated_at"


def message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
    return " ".join(p for p in parts if isinstance(p, str))


def prefix_query(q: str) -> str | None:
    """``to_tsquery`` text matching every word of ``q`` as a prefix (``None``: no words)."""
    words = _WORD.findall(q.lower())[:16]
    return " & ".join(f"{w}:*" for w in words) if words else None


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ThreadSearch:
    def __init__(self, pool: Pool, threads: ThreadRepo, state: ThreadStateService) -> None:
        self._pool = pool
        self._threads = threads
        self._state = state

    async def threads(self, user_id: str, q: str, request: PageRequest) -> Page[Thread]:
        """The user's threads whose title contains ``q`` or a message has its words, most
        recently updated first, a page at a time."""
        q = q.strip()
        if not q:
            return await self._threads.page_own(user_id, request)
        if request.after is None:  # later pages read the index as the first one left it
            await self.refresh(user_id)
        words = prefix_query(q)
        match = "t.name ILIKE %(like)s"
        if words is not None:
            match += (
                " OR EXISTS (SELECT 1 FROM thread_search_message m"
                " WHERE m.thread_id = t.thread_id AND m.words @@ to_tsquery('simple', %(words)s))"
            )
        where, order, params = keyset("t.updated_at", "t.thread_id", request, descending=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM thread t WHERE t.user_id = %(user)s AND ({match})"
                f" AND {where}{order}",
                {"user": user_id, "like": _like(q), "words": words, **params},
            )
            rows = await cur.fetchall()
        return page_of([Thread.model_validate(r) for r in rows], request, position)

    async def refresh(self, user_id: str) -> int:
        """Index the user's threads that changed since they were last indexed."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT t.thread_id FROM thread t"
                " LEFT JOIN thread_search_state s ON s.thread_id = t.thread_id"
                " WHERE t.user_id = %s AND (s.indexed_at IS NULL OR s.indexed_at < t.updated_at)"
                " ORDER BY t.updated_at DESC LIMIT %s",
                (user_id, REINDEX_BATCH),
            )
            stale = [row["thread_id"] for row in await cur.fetchall()]
        for thread_id in stale:
            thread = await self._threads.get_own(user_id, thread_id)
            if thread is not None:
                await self._index(thread)
        return len(stale)

    async def _index(self, thread: Thread) -> None:
        graph, _ = await self._state.graph(thread)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(thread.thread_id)}})
        await self.store(thread.thread_id, messages_of(snapshot.values), thread.updated_at)

    async def store(
        self, thread_id: uuid.UUID, messages: Sequence[BaseMessage], as_of: datetime
    ) -> None:
        """Index these messages of a thread (known ones are kept) as of ``as_of``."""
        ids: list[str] = []
        texts: list[str] = []
        for message in messages:
            if message.type not in ("human", "ai") or not message.id:
                continue
            text = message_text(message).strip()
            if text:
                ids.append(str(message.id))
                texts.append(text[:MAX_TEXT])
        params: dict[str, Any] = {"thread": thread_id, "ids": ids, "texts": texts, "at": as_of}
        async with self._pool.connection() as conn, conn.transaction():
            if ids:
                await conn.execute(
                    "INSERT INTO thread_search_message (thread_id, message_id, words)"
                    " SELECT %(thread)s, m.id, to_tsvector('simple', m.text)"
                    " FROM unnest(%(ids)s::text[], %(texts)s::text[]) AS m(id, text)"
                    " ON CONFLICT (thread_id, message_id)"
                    " DO UPDATE SET words = excluded.words",
                    params,
                )
            await conn.execute(
                "INSERT INTO thread_search_state (thread_id, indexed_at)"
                " SELECT thread_id, %(at)s FROM thread WHERE thread_id = %(thread)s"
                " ON CONFLICT (thread_id) DO UPDATE SET indexed_at = excluded.indexed_at",
                params,
            )
