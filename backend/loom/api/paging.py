"""Cursor pagination of the native API's lists, keeping OpenGPTs' bare-array bodies.

Every list takes ``limit`` (default :data:`DEFAULT_LIMIT`, at most :data:`MAX_LIMIT`) and
``cursor``; when more items follow, the answer carries the next page's URL in a
``Link: <...>; rel="next"`` header (none on the last page). A cursor is opaque to clients:
the base64url of the last item's sort key and id (see :mod:`loom.storage.paging`), so pages
stay consistent while items are added.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request, Response

from loom.errors import InvalidInput
from loom.storage.paging import Page, PageRequest, Position

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_FORMAT = "loom-cursor"


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.key.isoformat(), position.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, ident = json.loads(raw)
        if not isinstance(key, str) or not isinstance(ident, str):
            raise ValueError(cursor)
        when = datetime.fromisoformat(key)
        if when.tzinfo is None:
            raise ValueError(cursor)
        return Position(when, ident)
    except (ValueError, TypeError) as exc:  # bad base64, JSON, shape or timestamp
        raise InvalidInput("Invalid cursor: pass the one a Link header gave") from exc


async def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (the next page: Link header)")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description='From a previous answer\'s Link: <...>; rel="next"',
            # Opaque: only cursors Loom gave are valid (the fuzzer generates real ones).
            json_schema_extra={"format": CURSOR_FORMAT},
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageQuery = Annotated[PageRequest, Depends(page_request)]


def paged(
    request: Request, response: Response, page: Page[T], convert: Callable[[T], U]
) -> list[U]:
    """The page's items for the body; the next page's URL, if any, in ``Link``."""
    if page.next is not None:
        url = request.url.include_query_params(cursor=encode_cursor(page.next))
        response.headers["Link"] = f'<{url}>; rel="next"'
    return [convert(item) for item in page.items]
