"""Checks shared by every request model that stores client JSON."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_JSON_DEPTH = 64
# A query or path string Postgres can compare with its text (no NUL characters).
NO_NUL = r"^[^\x00]*$"


INT64 = 2**63


def storable(value: Any, what: str, *, int64: bool = False) -> Any:
    """``value`` if Postgres can store it as text/jsonb and it can be sent back, else
    ``ValueError`` (a 422).

    Postgres text and jsonb hold no NUL characters, no lone surrogates and no NaN/Infinity
    (which Python's JSON parser accepts); without this check they fail at the INSERT, a 500.
    Nesting is bounded too: a document nested a few hundred levels deep is stored fine but
    cannot be serialized again, which would break every listing that includes it.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(f"{what} may not contain NUL characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{what} may not contain unpaired surrogates") from exc
        elif int64 and isinstance(item, int) and not -INT64 <= item < INT64:
            # Messages go into LangGraph checkpoints (msgpack): 64-bit integers at most.
            raise ValueError(f"{what} may not contain integers beyond 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{what} may not contain NaN or Infinity")
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested too deeply (limit {MAX_JSON_DEPTH} levels)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def _json_number(value: Any) -> Any:
    # JSON Schema's integer/number: never a string or a boolean (pydantic's lax mode takes
    # "5" and true), while 5.0 is an integer as JSON Schema sees it (strict mode refuses it).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]
