"""Type aliases shared by the storage layer."""

from __future__ import annotations

from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Row: TypeAlias = dict[str, Any]
Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[Row]]
