"""arXiv paper search, spoken directly to the arXiv Atom API with httpx.

``GET <arxiv_base_url>?search_query=<q>&start=0&max_results=<n>&sortBy=...&sortOrder=descending``
(default ``https://export.arxiv.org/api/query``); a query that is an arXiv identifier
(``1706.03762``, ``hep-th/9901001``) is sent as ``id_list`` instead. A free-text query is
searched in all fields (``all:``) unless it already uses arXiv's field prefixes (``ti:``,
``au:``, ...). The Atom feed is parsed with ``xml.etree`` (expat refuses entity expansion
attacks). LangChain's wrapper needs the ``arxiv`` package, which is synchronous.
"""

from __future__ import annotations

import re
from typing import Literal
from xml.etree import ElementTree

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from loom.tools._http import api_client, api_request
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool

_NS = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}
_ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}(?:v\d+)?|[a-z-]+(?:\.[A-Z]{2})?/\d{7})$", re.I)
_FIELD_PREFIX = re.compile(r"\b(?:ti|au|abs|co|jr|cat|rn|id|all):", re.I)


class ArxivConfig(ToolConfig):
    max_results: int = Field(default=3, ge=1, le=10, description="Papers to return per query.")
    sort_by: Literal["relevance", "lastUpdatedDate", "submittedDate"] = "relevance"
    max_chars_per_summary: int = Field(default=1200, ge=100, le=4000)


class ArxivInput(BaseModel):
    query: str = Field(min_length=1, max_length=400, description="search query to look up")


def _text(element: ElementTree.Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def format_feed(xml: bytes, max_chars: int) -> list[str]:
    """One text block per ``<entry>`` of an arXiv Atom feed."""
    root = ElementTree.fromstring(xml)
    blocks: list[str] = []
    for entry in root.findall("atom:entry", _NS):
        title = _text(entry.find("atom:title", _NS))
        entry_id = _text(entry.find("atom:id", _NS))
        if title == "Error" and "api/errors" in entry_id:  # arXiv reports bad queries this way
            raise ValueError(f"arXiv rejected the query: {_text(entry.find('atom:summary', _NS))}")
        authors = [_text(a.find("atom:name", _NS)) for a in entry.findall("atom:author", _NS)]
        link = next(
            (
                str(el.get("href"))
                for el in entry.findall("atom:link", _NS)
                if el.get("rel") == "alternate" and el.get("href")
            ),
            entry_id,
        )
        lines = [
            f"Published: {_text(entry.find('atom:published', _NS))[:10]}",
            f"Title: {title}",
            f"Authors: {', '.join(a for a in authors if a)}",
            f"URL: {link}",
            f"Summary: {clip(_text(entry.find('atom:summary', _NS)), max_chars)}",
        ]
        blocks.append("\n".join(lines))
    return blocks


def query_params(query: str, config: ArxivConfig) -> dict[str, str]:
    query = query.strip()
    params = {"start": "0", "max_results": str(config.max_results)}
    match = _ARXIV_ID.match(query)
    if match:
        return {**params, "id_list": match.group(1)}
    search = query if _FIELD_PREFIX.search(query) else f"all:{query}"
    return {
        **params,
        "search_query": search,
        "sortBy": config.sort_by,
        "sortOrder": "descending",
    }


def _build(ctx: ToolContext, config: ArxivConfig) -> BaseTool:
    settings = ctx.settings

    async def search(query: str) -> str:
        async with api_client(settings) as client:
            feed = await api_request(
                client,
                "GET",
                settings.arxiv_base_url,
                service="arXiv",
                limit=settings.fetch_max_bytes,
                params=query_params(query, config),
            )
        blocks = format_feed(feed.content, config.max_chars_per_summary)
        if not blocks:
            return f"No arXiv papers found for {query!r}."
        return clip("\n\n".join(blocks), 12_000)

    return make_tool(
        name="arxiv",
        description=(
            "Search arXiv for scientific papers (physics, mathematics, computer science, "
            "biology, finance, statistics, ...). Returns titles, authors, dates, links and "
            "abstracts. Input: a search query or an arXiv id."
        ),
        args_schema=ArxivInput,
        coroutine=search,
        timeout_seconds=settings.tool_timeout_seconds,
    )


def spec() -> ToolSpec[ArxivConfig]:
    return ToolSpec(
        id="arxiv",
        name="Arxiv",
        description="Searches arXiv for scientific papers and returns their abstracts.",
        config_model=ArxivConfig,
        builder=_build,
        aliases=("Arxiv", "arXiv", "arxiv_search"),
    )
