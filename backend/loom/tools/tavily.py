"""Tavily web search, spoken directly to Tavily's REST API with httpx.

``POST <tavily_base_url>/search`` with a JSON body ``{"api_key", "query", "max_results",
"search_depth", "topic"}`` (the key is also sent as ``Authorization: Bearer``, the form Tavily's
current docs use) and reads ``results[]`` (``title``, ``url``, ``content``, ``score``). LangChain's
wrapper hard-codes ``https://api.tavily.com``, hence this small client. Needs
``TAVILY_API_KEY``.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from loom.tools._http import api_client, api_request
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool


class TavilyConfig(ToolConfig):
    max_results: int = Field(default=5, ge=1, le=10, description="Results to return per query.")
    search_depth: Literal["basic", "advanced"] = "basic"
    topic: Literal["general", "news"] = "general"


class TavilyInput(BaseModel):
    query: str = Field(min_length=1, max_length=400, description="search query to look up")


def format_results(payload: dict[str, Any], max_results: int) -> str:
    blocks: list[str] = []
    answer = payload.get("answer")
    if answer:
        blocks.append(f"Answer: {clip(str(answer), 1000)}")
    for result in payload.get("results", [])[:max_results]:
        blocks.append(
            f"Title: {result.get('title', '')}\n"
            f"URL: {result.get('url', '')}\n"
            f"Content: {clip(' '.join(str(result.get('content', '')).split()), 800)}"
        )
    return "\n\n".join(blocks)


def _build(ctx: ToolContext, config: TavilyConfig) -> BaseTool:
    settings = ctx.settings
    url = settings.tavily_base_url.rstrip("/") + "/search"

    async def search(query: str) -> str:
        key = settings.tavily_api_key
        if key is None:  # checked by ToolSpec.build; kept for type narrowing
            raise ToolException("search_tavily: TAVILY_API_KEY is not set")
        secret = key.get_secret_value()
        body = {
            "api_key": secret,
            "query": query,
            "max_results": config.max_results,
            "search_depth": config.search_depth,
            "topic": config.topic,
        }
        async with api_client(settings) as client:
            try:
                answer = await api_request(
                    client,
                    "POST",
                    url,
                    service="Tavily",
                    limit=settings.fetch_max_bytes,
                    json=body,
                    headers={"Authorization": f"Bearer {secret}"},
                )
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise ToolException(
                        f"search_tavily: Tavily rejected the API key (HTTP {status})"
                    ) from exc
                raise
        text = format_results(answer.json(), config.max_results)
        return clip(text, 8_000) if text else f"No Tavily results found for {query!r}."

    return make_tool(
        name="search_tavily",
        description=(
            "Search the web with Tavily, a search engine built for AI agents. Returns titles, "
            "URLs and the relevant content of each result. Input: a search query."
        ),
        args_schema=TavilyInput,
        coroutine=search,
        timeout_seconds=settings.tool_timeout_seconds,
    )


def spec() -> ToolSpec[TavilyConfig]:
    return ToolSpec(
        id="search_tavily",
        name="Search (Tavily)",
        description="Searches the web with Tavily (needs TAVILY_API_KEY).",
        config_model=TavilyConfig,
        builder=_build,
        aliases=("Search (Tavily)", "Tavily", "tavily", "tavily_search", "tavily_search_results"),
        required_settings=("tavily_api_key",),
    )
