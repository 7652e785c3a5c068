"""Schemathesis hooks (loaded by tests/api/test_schemathesis.py): how to make the values the
OpenAPI document can only name.

A page ``cursor`` is opaque (``format: loom-cursor``): only cursors Loom gave are valid, so
the fuzzer makes real ones, of any position, instead of random strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

import schemathesis
from hypothesis import strategies as st

from loom.api.paging import CURSOR_FORMAT, encode_cursor
from loom.storage.paging import Position

_WHEN = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

schemathesis.openapi.format(
    CURSOR_FORMAT,
    st.builds(lambda when, ident: encode_cursor(Position(when, str(ident))), _WHEN, st.uuids()),
)
