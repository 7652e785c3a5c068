"""Wikipedia search, spoken directly to the MediaWiki action API with httpx.

Two requests per query against ``settings.wikipedia_base_url`` (an ``api.php`` endpoint):

1. ``action=query&list=search&srsearch=<q>&srlimit=<k>`` to rank pages;
2. ``action=query&prop=extracts|info&exintro=1&explaintext=1&inprop=url&pageids=...`` for the
   plain-text introductions and canonical URLs (TextExtracts returns several extracts in one
   request only with ``exintro``).

Both use ``format=json&formatversion=2``. The ``wikipedia`` pip package (behind LangChain's
wrapper) cannot be pointed at another API URL and is synchronous, hence this small client.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from loom.tools._html import strip_tags
from loom.tools._http import api_client, api_request
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool

_WIKIPEDIA_HOST = re.compile(r"^(?P<lang>[a-z][a-z0-9-]*)\.(?P<rest>(?:m\.)?wikipedia\.org)$")


class WikipediaConfig(ToolConfig):
    top_k_results: int = Field(default=3, ge=1, le=10, description="Pages to return per query.")
    lang: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}(-[a-z0-9]+)*$",
        description="Wikipedia language edition, e.g. 'de' (default: the configured API's).",
    )
    max_chars_per_page: int = Field(
        default=1500, ge=100, le=4000, description="Characters of each page's introduction."
    )


class WikipediaInput(BaseModel):
    query: str = Field(min_length=1, max_length=300, description="search query to look up")


def api_url(base_url: str, lang: str | None) -> str:
    """The API endpoint for a language edition.

    ``{lang}`` in the base URL is replaced; a ``<xx>.wikipedia.org`` host gets its language
    label swapped; any other base URL (a mirror, a test fake) is used as configured.
    """
    if lang is None:
        return base_url.replace("{lang}", "en")
    if "{lang}" in base_url:
        return base_url.replace("{lang}", lang)
    scheme, sep, rest = base_url.partition("://")
    host, slash, path = rest.partition("/")
    match = _WIKIPEDIA_HOST.match(host)
    if not sep or match is None:
        return base_url
    return f"{scheme}://{lang}.{match.group('rest')}{slash}{path}"


def _format(pages: list[dict[str, Any]], order: list[int], max_chars: int) -> str:
    by_id = {int(page["pageid"]): page for page in pages if "pageid" in page}
    blocks: list[str] = []
    for pageid in order:
        page = by_id.get(pageid)
        if page is None or page.get("missing"):
            continue
        summary = clip(" ".join(str(page.get("extract") or "").split()), max_chars)
        lines = [f"Page: {page.get('title', '')}"]
        if page.get("fullurl"):
            lines.append(f"URL: {page['fullurl']}")
        lines.append(f"Summary: {summary or '(no summary available)'}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _build(ctx: ToolContext, config: WikipediaConfig) -> BaseTool:
    settings = ctx.settings
    url = api_url(settings.wikipedia_base_url, config.lang)
    limit = settings.fetch_max_bytes
    common = {"action": "query", "format": "json", "formatversion": "2"}

    async def search(query: str) -> str:
        async with api_client(settings) as client:
            found = await api_request(
                client,
                "GET",
                url,
                service="Wikipedia",
                limit=limit,
                params={
                    **common,
                    "list": "search",
                    "srsearch": query,
                    "srlimit": str(config.top_k_results),
                    "srprop": "snippet",
                },
            )
            hits: list[dict[str, Any]] = found.json().get("query", {}).get("search", [])
            if not hits:
                return f"No Wikipedia pages found for {query!r}."
            order = [int(hit["pageid"]) for hit in hits[: config.top_k_results]]
            details = await api_request(
                client,
                "GET",
                url,
                service="Wikipedia",
                limit=limit,
                params={
                    **common,
                    "prop": "extracts|info",
                    "exintro": "1",
                    "explaintext": "1",
                    "exlimit": str(len(order)),
                    "inprop": "url",
                    "pageids": "|".join(str(pageid) for pageid in order),
                },
            )
        pages: list[dict[str, Any]] = details.json().get("query", {}).get("pages", [])
        text = _format(pages, order, config.max_chars_per_page)
        if not text:  # extracts unavailable: fall back to the search snippets
            text = "\n\n".join(
                f"Page: {hit.get('title', '')}\nSummary: {strip_tags(str(hit.get('snippet', '')))}"
                for hit in hits
            )
        return clip(text, 12_000)

    return make_tool(
        name="wikipedia",
        description=(
            "Search Wikipedia and return the introductions of the best matching pages. "
            "Input: a search query."
        ),
        args_schema=WikipediaInput,
        coroutine=search,
        timeout_seconds=settings.tool_timeout_seconds,
    )


def spec() -> ToolSpec[WikipediaConfig]:
    return ToolSpec(
        id="wikipedia",
        name="Wikipedia",
        description="Searches Wikipedia and returns the introductions of the best matching pages.",
        config_model=WikipediaConfig,
        builder=_build,
        aliases=("Wikipedia", "wiki", "wikipedia_search"),
    )
