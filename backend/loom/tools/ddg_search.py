"""DuckDuckGo web search through its no-JavaScript HTML endpoint, with httpx.

Sends ``GET <ddg_base_url>?q=<query>`` (default ``https://html.duckduckgo.com/html/``) and
reads the result list out of the page with a tolerant ``html.parser`` parser: links with class
``result__a`` (title and URL, unwrapped from DuckDuckGo's ``/l/?uddg=`` redirect) and the
following ``result__snippet``. Ads (``result--ad``, ``y.js`` links) are dropped. LangChain's
wrapper needs the ``ddgs`` package, which cannot be pointed at a configurable URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from loom.tools._http import api_client, api_request
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool

_SAFESEARCH = {"strict": "1", "moderate": "-1", "off": "-2"}


class DdgConfig(ToolConfig):
    max_results: int = Field(default=5, ge=1, le=10, description="Results to return per query.")
    region: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}-[a-z]{2}$",
        description="DuckDuckGo region code, e.g. 'us-en', 'de-de', 'wt-wt' (no region).",
    )
    safesearch: Literal["strict", "moderate", "off"] = "moderate"


class DdgInput(BaseModel):
    query: str = Field(min_length=1, max_length=400, description="search query to look up")


@dataclass
class SearchResult:
    title: str
    url: str
    snippet: str = ""
    ad: bool = False


def _unwrap(href: str) -> str:
    """The target of a DuckDuckGo redirect link (``//duckduckgo.com/l/?uddg=...``)."""
    if href.startswith("//"):
        href = "https:" + href
    parts = urlsplit(href)
    if parts.path.endswith("/l/"):
        target = parse_qs(parts.query).get("uddg")
        if target:
            return target[0]
    return href


class _ResultParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.results: list[SearchResult] = []
        self._capture: str | None = None  # "title" | "snippet"
        self._capture_tag = ""
        self._capture_depth = 0
        self._buffer: list[str] = []
        self._ad_pending = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self._capture is not None:
            if tag == self._capture_tag:
                self._capture_depth += 1
            return
        if "result--ad" in classes:
            self._ad_pending = True
        if tag == "a" and "result__a" in classes:
            href = _unwrap(attributes.get("href") or "")
            is_ad = self._ad_pending or "/y.js" in href or "ad_domain=" in href
            self._ad_pending = False
            self.results.append(SearchResult(title="", url=href, ad=is_ad))
            self._start("title", tag)
        elif "result__snippet" in classes and self.results:
            self._start("snippet", tag)

    def _start(self, what: str, tag: str) -> None:
        self._capture = what
        self._capture_tag = tag
        self._capture_depth = 1
        self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if self._capture is None or tag != self._capture_tag:
            return
        self._capture_depth -= 1
        if self._capture_depth > 0:
            return
        text = " ".join("".join(self._buffer).split())
        if self._capture == "title":
            self.results[-1].title = text
        else:
            self.results[-1].snippet = text
        self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._buffer.append(data)


def parse_results(html: str) -> list[SearchResult]:
    """Organic results of a DuckDuckGo HTML result page, in page order."""
    parser = _ResultParser()
    parser.feed(html)
    parser.close()
    return [r for r in parser.results if not r.ad and r.url.startswith(("http://", "https://"))]


def _build(ctx: ToolContext, config: DdgConfig) -> BaseTool:
    settings = ctx.settings

    async def search(query: str) -> str:
        params = {"q": query, "kp": _SAFESEARCH[config.safesearch]}
        if config.region:
            params["kl"] = config.region
        async with api_client(settings) as client:
            page = await api_request(
                client,
                "GET",
                settings.ddg_base_url,
                service="DuckDuckGo",
                limit=settings.fetch_max_bytes,
                params=params,
            )
        results = parse_results(page.text)[: config.max_results]
        if not results:
            return f"No DuckDuckGo results found for {query!r}."
        blocks = [
            f"Title: {r.title}\nURL: {r.url}\nSnippet: {clip(r.snippet, 500)}" for r in results
        ]
        return clip("\n\n".join(blocks), 8_000)

    return make_tool(
        name="ddg_search",
        description=(
            "Search the web with DuckDuckGo. Returns titles, URLs and snippets. "
            "Input: a search query."
        ),
        args_schema=DdgInput,
        coroutine=search,
        timeout_seconds=settings.tool_timeout_seconds,
    )


def spec() -> ToolSpec[DdgConfig]:
    return ToolSpec(
        id="ddg_search",
        name="DDG Search",
        description="Searches the web with DuckDuckGo (no API key needed).",
        config_model=DdgConfig,
        builder=_build,
        aliases=("DDG Search", "DuckDuckGo Search", "DuckDuckGo", "ddg", "duckduckgo_search"),
    )
