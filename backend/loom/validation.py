"""Checks shared by every request model that stores client JSON."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_JSON_DEPTH = 64
# A query or path string Postgres can compare with its text (no NUL characters).
NO_NUL = r"^[^\x00]*$"


# The integers msgpack and orjson carry: signed or unsigned 64-bit.
INT_LOW, INT_HIGH = -(2**63), 2**64


def storable(value: Any, what: str) -> Any:
    """``value`` if Postgres can store it as text/jsonb and it can be sent back, else
    ``ValueError`` (a 422); integers beyond 64 bits come back as floats.

    Postgres text and jsonb hold no NUL characters, no lone surrogates and no NaN/Infinity
    (which Python's JSON parser accepts); without this check they fail at the INSERT, a 500.
    Nesting is bounded too: a document nested a few hundred levels deep is stored fine but
    cannot be serialized again, which would break every listing that includes it. An integer
    beyond 64 bits (signed or unsigned) is valid JSON, but neither checkpoints (msgpack) nor
    the event streams (orjson) can carry it: it is kept as the nearest float, the number
    JavaScript and most JSON parsers read it as anyway (one beyond a float's range: 422).
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    big = False
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(f"{what} may not contain NUL characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{what} may not contain unpaired surrogates") from exc
        elif isinstance(item, int) and not isinstance(item, bool):
            big = big or not INT_LOW <= item < INT_HIGH
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{what} may not contain NaN or Infinity")
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested too deeply (limit {MAX_JSON_DEPTH} levels)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    if not big:
        return value
    try:
        return _small_ints(value)
    except OverflowError as exc:
        raise ValueError(f"{what} may not contain numbers beyond a float's range") from exc


def _small_ints(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits as a float (depth is bounded above)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if INT_LOW <= value < INT_HIGH else float(value)
    if isinstance(value, dict):
        return {key: _small_ints(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_small_ints(item) for item in value]
    return value


def _json_number(value: Any) -> Any:
    # JSON Schema's integer/number: never a string or a boolean (pydantic's lax mode takes
    # "5" and true), while 5.0 is an integer as JSON Schema sees it (strict mode refuses it).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]

# Bounds go before the validator: ``Annotated[int, Field(ge=1), JSON_NUMBER]``. After it
# (``Annotated[JsonInt, Field(ge=1)]``, ``JsonFloat | None = Field(ge=0)``) the OpenAPI
# document gets pydantic's own "ge"/"le" keys, which no JSON Schema reader knows.
JSON_NUMBER = BeforeValidator(_json_number)
