"""An APIRouter whose routes answer with and without a trailing slash (no redirects)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter


class SlashRouter(APIRouter):
    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        twin = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        kwargs["include_in_schema"] = False
        kwargs.pop("operation_id", None)
        super().add_api_route(twin, endpoint, **kwargs)
