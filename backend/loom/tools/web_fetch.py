"""The ``web_fetch`` tool: read a public web page as text.

Fetching goes through :class:`loom.tools.safe_http.SafeFetcher` (public addresses only, DNS
pinned, redirects re-checked, size and time capped); HTML is turned into readable text with
scripts and styles removed. Refusals and failures reach the model as ``Error: ...`` text.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from loom.tools._html import html_to_text
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool
from loom.tools.safe_http import FetchResult, SafeFetcher

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/x-yaml"}
)


class WebFetchConfig(ToolConfig):
    max_chars: int = Field(
        default=8000, ge=500, le=50_000, description="Characters of page text given to the model."
    )


class WebFetchInput(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL of the page to read")


def _is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in _TEXT_TYPES
        or content_type.endswith(("+json", "+xml"))
    )


def _looks_like_html(result: FetchResult) -> bool:
    head = result.body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


def render(result: FetchResult, max_chars: int) -> str:
    """The text the model sees for a fetched document."""
    content_type = result.content_type
    if content_type in _HTML_TYPES or (not content_type and _looks_like_html(result)):
        title, text = html_to_text(result.text)
    elif _is_text(content_type) or not content_type:
        title, text = "", result.text.strip()
    else:
        raise ToolException(
            f"{result.url} is {content_type} ({len(result.body)} bytes), not a text document"
        )
    header = [f"URL: {result.url}"]
    if title:
        header.append(f"Title: {title}")
    if result.truncated:
        note = f"Note: the page was cut at {len(result.body)} bytes"
        if result.content_encodings:
            note += f" (decoded from {', '.join(result.content_encodings)})"
        header.append(note)
    body = text or "(the page has no readable text)"
    return clip("\n".join(header) + "\n\n" + body, max_chars)


def build_web_fetch_tool(fetcher: SafeFetcher, config: WebFetchConfig, timeout: float) -> BaseTool:
    """The tool around a given fetcher (tests inject resolvers and address checks this way)."""

    async def fetch(url: str) -> str:
        return render(await fetcher.fetch(url), config.max_chars)

    return make_tool(
        name="web_fetch",
        description=(
            "Fetch a public web page (http or https URL) and return its readable text. "
            "Use it to read a page found by a search. Input: the URL."
        ),
        args_schema=WebFetchInput,
        coroutine=fetch,
        timeout_seconds=timeout,
    )


def _build(ctx: ToolContext, config: WebFetchConfig) -> BaseTool:
    settings = ctx.settings
    return build_web_fetch_tool(SafeFetcher(settings), config, settings.tool_timeout_seconds)


def spec() -> ToolSpec[WebFetchConfig]:
    return ToolSpec(
        id="web_fetch",
        name="Web page fetcher",
        description="Reads a public web page and gives its text to the model.",
        config_model=WebFetchConfig,
        builder=_build,
        aliases=("Web fetch", "Web page fetcher", "web_fetcher", "fetch", "web_loader"),
    )
