"""The tool registry: stable id -> :class:`~loom.tools.base.ToolSpec`.

Adding a tool is one module exposing ``spec()`` plus one line in :func:`default_tool_registry`.
Clients may name a tool by its id, its display name or an alias (OpenGPTs ids and display
names, legacy spellings), case-insensitively; :func:`normalize_tool_entry` reads the entry
shapes clients send and returns the stable id and the config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.tools import BaseTool

from loom.tools import arxiv, ddg_search, pubmed, retrieval, tavily, web_fetch, wikipedia
from loom.tools.base import ToolConfigError, ToolContext, ToolSpec

_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # valid OpenAI function name


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


class ToolRegistry:
    """Tool specs keyed by stable id, resolvable by id, display name or alias."""

    def __init__(self, specs: Iterable[ToolSpec[Any]]) -> None:
        self._specs: dict[str, ToolSpec[Any]] = {}
        self._names: dict[str, str] = {}
        for spec in specs:
            if not _TOOL_ID.match(spec.id):
                raise ValueError(f"tool id {spec.id!r} is not a valid function name")
            if spec.id in self._specs:
                raise ValueError(f"duplicate tool id {spec.id!r}")
            self._specs[spec.id] = spec
        # Ids win over display names and aliases; a name claimed by two tools is an error.
        for spec in self._specs.values():
            self._names[_key(spec.id)] = spec.id
        for spec in self._specs.values():
            for name in (spec.name, *spec.aliases):
                owner = self._names.setdefault(_key(name), spec.id)
                if owner != spec.id:
                    raise ValueError(f"tool name {name!r} is used by {owner!r} and {spec.id!r}")

    def get(self, tool_id: str) -> ToolSpec[Any]:
        """The spec with this exact stable id (``KeyError`` otherwise)."""
        return self._specs[tool_id]

    def resolve(self, name_or_id: str) -> ToolSpec[Any] | None:
        """The spec named by an id, display name or alias (case-insensitive), or ``None``."""
        tool_id = self._names.get(_key(name_or_id))
        return None if tool_id is None else self._specs[tool_id]

    def all(self) -> list[ToolSpec[Any]]:
        return list(self._specs.values())

    def ids(self) -> list[str]:
        return list(self._specs)

    def normalize_entry(self, entry: object) -> tuple[str, dict[str, Any]]:
        """Read one entry of an assistant's tool list; returns ``(stable id, config)``.

        Accepted shapes: a bare name (``"Wikipedia"``, ``"ddg_search"``); Loom's
        ``{"type": "<id>", "config": {...}}``; OpenGPTs' ``{"id", "type", "name",
        "description", "config"}``. ``type`` names the tool when present, otherwise ``id``,
        then ``name``. The config is validated against the tool's schema (unknown keys are
        rejected) and returned as sent. Raises :class:`~loom.tools.base.ToolConfigError`
        (a ``ValueError``) with a message fit for an HTTP 422.
        """
        config: object = {}
        if isinstance(entry, str):
            candidates = [entry]
        elif isinstance(entry, Mapping):
            if entry.get("type") is not None:
                candidates = [entry["type"]]
            else:
                candidates = [entry[k] for k in ("id", "name") if entry.get(k) is not None]
            config = entry.get("config") or {}
        else:
            raise ToolConfigError(
                f"a tool must be a name or an object with a 'type', not {type(entry).__name__}"
            )
        names = [c for c in candidates if isinstance(c, str)]
        if not names:
            raise ToolConfigError("a tool object needs a 'type' (the tool id) or a 'name'")
        spec = next((s for s in map(self.resolve, names) if s is not None), None)
        if spec is None:
            raise ToolConfigError(
                f"unknown tool {names[0]!r}; available tools: {', '.join(self.ids())}"
            )
        if not isinstance(config, Mapping):
            raise ToolConfigError(f"tool {spec.id!r}: 'config' must be an object")
        spec.validate_config(config)
        return spec.id, dict(config)

    def build(self, ctx: ToolContext, entries: Iterable[object]) -> list[BaseTool]:
        """Build the tools of an assistant's tool list for one run (entries as clients send)."""
        tools: list[BaseTool] = []
        for entry in entries:
            tool_id, config = self.normalize_entry(entry)
            tools.append(self._specs[tool_id].build(ctx, config))
        return tools


def default_tool_registry() -> ToolRegistry:
    """Every tool Loom ships, one line each."""
    return ToolRegistry(
        [
            wikipedia.spec(),
            ddg_search.spec(),
            arxiv.spec(),
            pubmed.spec(),
            tavily.spec(),
            web_fetch.spec(),
            retrieval.spec(),
        ]
    )


def normalize_tool_entry(
    entry: object, registry: ToolRegistry | None = None
) -> tuple[str, dict[str, Any]]:
    """``(stable id, config)`` of one tool entry; see :meth:`ToolRegistry.normalize_entry`."""
    return (registry or default_tool_registry()).normalize_entry(entry)
