"""The tool registry: ids, names, aliases, entry shapes, config validation, availability."""

from __future__ import annotations

import re

import pytest

from loom.settings import Settings
from loom.tools import wikipedia
from loom.tools.base import ToolConfigError, ToolContext, ToolUnavailableError
from loom.tools.registry import ToolRegistry, normalize_tool_entry

EXPECTED = {
    "wikipedia": "Wikipedia",
    "ddg_search": "DDG Search",
    "arxiv": "Arxiv",
    "pubmed": "PubMed",
    "search_tavily": "Search (Tavily)",
    "web_fetch": "Web page fetcher",
    "retrieval": "Retrieval",
}


def test_ids_and_display_names(registry: ToolRegistry) -> None:
    assert registry.ids() == list(EXPECTED)
    assert {spec.id: spec.name for spec in registry.all()} == EXPECTED
    for spec in registry.all():
        assert spec.description
        assert registry.get(spec.id) is spec


@pytest.mark.parametrize(
    ("name", "tool_id"),
    [
        ("wikipedia", "wikipedia"),
        ("Wikipedia", "wikipedia"),
        ("WIKIPEDIA", "wikipedia"),
        ("DDG Search", "ddg_search"),
        ("ddg_search", "ddg_search"),
        ("DuckDuckGo Search", "ddg_search"),
        ("  ddg   search ", "ddg_search"),
        ("Search (Tavily)", "search_tavily"),
        ("search_tavily", "search_tavily"),
        ("Tavily", "search_tavily"),
        ("Retrieval", "retrieval"),
        ("retrieval", "retrieval"),
        ("Arxiv", "arxiv"),
        ("arXiv", "arxiv"),
        ("PubMed", "pubmed"),
        ("pubmed", "pubmed"),
        ("Web fetch", "web_fetch"),
        ("web_fetch", "web_fetch"),
        ("Web page fetcher", "web_fetch"),
    ],
)
def test_resolve_ids_names_and_aliases(registry: ToolRegistry, name: str, tool_id: str) -> None:
    spec = registry.resolve(name)
    assert spec is not None
    assert spec.id == tool_id


@pytest.mark.parametrize("name", ["", "python_repl", "Search (short answer, Tavily)", "dall_e"])
def test_resolve_unknown(registry: ToolRegistry, name: str) -> None:
    assert registry.resolve(name) is None


def test_tool_names_are_valid_function_names(registry: ToolRegistry, settings: Settings) -> None:
    ctx = ToolContext(settings=settings)
    for spec in registry.all():
        tool = spec.build(ctx, {})
        assert tool.name == spec.id
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", tool.name)
        assert tool.description


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Wikipedia", ("wikipedia", {})),
        ("ddg_search", ("ddg_search", {})),
        ({"type": "arxiv", "config": {"max_results": 2}}, ("arxiv", {"max_results": 2})),
        ({"type": "pubmed"}, ("pubmed", {})),
        ({"type": "retrieval", "config": None}, ("retrieval", {})),
        (
            {
                "id": "ddg_search",
                "type": "ddg_search",
                "name": "DDG Search",
                "description": "Search the web with DuckDuckGo.",
                "config": {},
                "multi_use": False,
            },
            ("ddg_search", {}),
        ),
        # OpenGPTs' own frontend gives each tool instance a random id; the type decides.
        (
            {"id": "0c6b7a3e-2f", "type": "search_tavily", "name": "Search (Tavily)", "config": {}},
            ("search_tavily", {}),
        ),
        (
            {"name": "Wikipedia", "config": {"top_k_results": 5}},
            ("wikipedia", {"top_k_results": 5}),
        ),
        ({"id": "web_fetch"}, ("web_fetch", {})),
    ],
)
def test_normalize_entry_shapes(entry: object, expected: tuple[str, dict[str, object]]) -> None:
    assert normalize_tool_entry(entry) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("python_repl", "unknown tool 'python_repl'"),
        ({"type": "search_tavily_answer", "name": "Search (Tavily)"}, "unknown tool"),
        ({"config": {}}, "needs a 'type'"),
        (42, "must be a name or an object"),
        ({"type": "wikipedia", "config": {"top_k": 3}}, "top_k: Extra inputs are not permitted"),
        ({"type": "wikipedia", "config": {"top_k_results": 99}}, "top_k_results"),
        ({"type": "wikipedia", "config": ["x"]}, "'config' must be an object"),
        ({"type": "search_tavily", "config": {"search_depth": "deep"}}, "search_depth"),
    ],
)
def test_normalize_entry_rejects(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalize_tool_entry(entry)


def test_unknown_tool_message_lists_available(registry: ToolRegistry) -> None:
    with pytest.raises(ToolConfigError) as info:
        registry.normalize_entry("nope")
    assert "available tools: wikipedia, ddg_search" in str(info.value)


def test_config_schemas(registry: ToolRegistry) -> None:
    wiki = registry.get("wikipedia").config_schema
    assert wiki["additionalProperties"] is False
    assert wiki["properties"]["top_k_results"]["minimum"] == 1
    assert wiki["properties"]["top_k_results"]["maximum"] == 10
    assert "lang" in wiki["properties"]
    assert "max_results" in registry.get("search_tavily").config_schema["properties"]
    assert "description" in registry.get("retrieval").config_schema["properties"]
    for spec in registry.all():
        assert spec.config_schema["type"] == "object"


def test_tavily_unavailable_without_key(registry: ToolRegistry, settings: Settings) -> None:
    spec = registry.get("search_tavily")
    no_key = settings.model_copy(update={"tavily_api_key": None})
    assert spec.unavailable_reason(no_key) == "TAVILY_API_KEY is not set"
    assert spec.unavailable_reason(settings) is None
    with pytest.raises(ToolUnavailableError, match="TAVILY_API_KEY is not set"):
        spec.build(ToolContext(settings=no_key), {})
    # Every other tool needs nothing.
    others = [s for s in registry.all() if s.id != "search_tavily"]
    assert all(s.unavailable_reason(no_key) is None for s in others)


def test_registry_rejects_clashes() -> None:
    with pytest.raises(ValueError, match="duplicate tool id"):
        ToolRegistry([wikipedia.spec(), wikipedia.spec()])
    other = wikipedia.spec()
    clash = type(other)(**{**other.__dict__, "id": "wiki2", "aliases": ()})
    with pytest.raises(ValueError, match="is used by"):
        ToolRegistry([wikipedia.spec(), clash])
    bad = type(other)(**{**other.__dict__, "id": "bad name!"})
    with pytest.raises(ValueError, match="not a valid function name"):
        ToolRegistry([bad])
