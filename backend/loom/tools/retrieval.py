"""The ``retrieval`` tool: search the documents uploaded to the assistant and the thread.

It only consumes the run's :class:`~loom.tools.base.Retriever` (built by ``loom.retrieval``
for the assistant's and the thread's namespaces) and formats the chunks for the model as
``<document source="...">content</document>`` blocks. The tool message's ``artifact`` lists
the passages returned, in order (``source``, ``score``, the passage's ``text`` and the
chunk's metadata: ``id``, ``namespace``, ``filename``, ``chunk``, ``page``, and whatever the
ingest added, such as a ``file_id``), so a protocol or the UI can cite them.
"""

from __future__ import annotations

from html import escape
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from loom.tools.base import RetrievedChunk, ToolConfig, ToolContext, ToolSpec, clip, make_tool

DEFAULT_DESCRIPTION = (
    "Look up information in the files uploaded to this assistant or this conversation. "
    "Use it when the user refers to their documents or files, or asks something those "
    "documents may answer. Input: a search query."
)


class RetrievalConfig(ToolConfig):
    description: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="What the uploaded documents are about (replaces the tool description).",
    )


class RetrievalInput(BaseModel):
    query: str = Field(min_length=1, max_length=1000, description="search query to look up")


def format_chunks(chunks: list[RetrievedChunk]) -> str:
    blocks: list[str] = []
    for chunk in chunks:
        source = f' source="{escape(chunk.source, quote=True)}"' if chunk.source else ""
        blocks.append(f"<document{source}>\n{chunk.content.strip()}\n</document>")
    return "\n\n".join(blocks)


def passage(chunk: RetrievedChunk) -> dict[str, Any]:
    """One entry of a retrieval tool message's ``artifact``."""
    return {**chunk.metadata, "source": chunk.source, "score": chunk.score, "text": chunk.content}


def _build(ctx: ToolContext, config: RetrievalConfig) -> BaseTool:
    retriever = ctx.retriever

    async def retrieve(query: str) -> tuple[str, list[dict[str, Any]]]:
        if retriever is None:
            return (
                "No documents are available: nothing was uploaded to this assistant or thread.",
                [],
            )
        chunks = await retriever(query)
        if not chunks:
            return f"No passages in the uploaded documents match {query!r}.", []
        return clip(format_chunks(chunks), 16_000), [passage(c) for c in chunks]

    return make_tool(
        name="retrieval",
        description=config.description or DEFAULT_DESCRIPTION,
        args_schema=RetrievalInput,
        coroutine=retrieve,
        timeout_seconds=ctx.settings.tool_timeout_seconds,
        response_format="content_and_artifact",
    )


def spec() -> ToolSpec[RetrievalConfig]:
    return ToolSpec(
        id="retrieval",
        name="Retrieval",
        description="Searches the documents uploaded to the assistant and the thread.",
        config_model=RetrievalConfig,
        builder=_build,
        aliases=("Retrieval", "retriever", "file_search"),
    )
