"""Keyset pages of a list: ``limit`` rows after the position of the last row already seen.

A position is the list's sort key (a timestamp) and the row's id, the tie-breaker; a page is
the rows strictly after it in the list's order. Rows inserted meanwhile before the position
are not seen, rows after it are seen once: nothing is skipped or repeated, whatever is added
between two pages (a row whose sort key changes, e.g. a thread that was updated, moves).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from loom.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a page starts: after the row with this sort key and id."""

    key: datetime
    id: str


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: Position | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: Position | None  # where the next page starts; None on the last page


def keyset(
    key: str, ident: str, request: PageRequest, *, descending: bool, cast: str = "uuid"
) -> tuple[str, str, dict[str, Any]]:
    """SQL for one page: a condition to AND into the WHERE clause (``TRUE`` on the first
    page), the ORDER BY ... LIMIT clause (one row more than asked, to know whether another
    page follows) and their named parameters (``page_key``, ``page_id``, ``page_limit``)."""
    direction = "DESC" if descending else "ASC"
    order = f" ORDER BY {key} {direction}, {ident} {direction} LIMIT %(page_limit)s"
    params: dict[str, Any] = {"page_limit": request.limit + 1}
    if request.after is None:
        return "TRUE", order, params
    if cast == "uuid":
        try:
            uuid.UUID(request.after.id)
        except ValueError as exc:  # a cursor of another list (of files, say)
            raise InvalidInput("Invalid cursor: pass the one a Link header gave") from exc
    op = "<" if descending else ">"
    params.update(page_key=request.after.key, page_id=request.after.id)
    where = f"({key}, {ident}) {op} (%(page_key)s, %(page_id)s::{cast})"
    return where, order, params


def page_of(rows: Sequence[T], request: PageRequest, position: Callable[[T], Position]) -> Page[T]:
    """The page out of the rows :func:`keyset` fetched (one more than asked when another
    page follows)."""
    items = list(rows[: request.limit])
    more = len(rows) > request.limit
    return Page(items, position(items[-1]) if more and items else None)
