"""The retrieval tool: formats what the run's retriever returns; copes without one."""

from __future__ import annotations

import pytest

from loom.settings import Settings
from loom.tools.base import RetrievedChunk
from loom.tools.registry import ToolRegistry
from loom.tools.retrieval import DEFAULT_DESCRIPTION

from .helpers import build, call


class FakeRetriever:
    def __init__(self, chunks: list[RetrievedChunk]) -> None:
        self.chunks = chunks
        self.queries: list[str] = []

    async def __call__(self, query: str) -> list[RetrievedChunk]:
        self.queries.append(query)
        return self.chunks


async def test_formats_chunks(registry: ToolRegistry, settings: Settings) -> None:
    retriever = FakeRetriever(
        [
            RetrievedChunk("The launch is on 3 March.", source="plan.pdf", score=0.91),
            RetrievedChunk("  Budget: 40k EUR.\n", source='notes "v2".docx', score=0.8),
            RetrievedChunk("No source here.", source=None, score=0.5, metadata={"page": 2}),
        ]
    )
    tool = build(registry, settings, "Retrieval", retriever=retriever)
    message = await call(tool, query="when is the launch?")
    assert message.status == "success"
    assert str(message.content) == (
        '<document source="plan.pdf">\nThe launch is on 3 March.\n</document>\n\n'
        '<document source="notes &quot;v2&quot;.docx">\nBudget: 40k EUR.\n</document>\n\n'
        "<document>\nNo source here.\n</document>"
    )
    assert retriever.queries == ["when is the launch?"]


async def test_without_retriever(registry: ToolRegistry, settings: Settings) -> None:
    message = await call(build(registry, settings, "retrieval"), query="anything")
    assert message.status == "success"
    assert "No documents are available" in str(message.content)


async def test_no_matches(registry: ToolRegistry, settings: Settings) -> None:
    tool = build(registry, settings, "retrieval", retriever=FakeRetriever([]))
    assert "No passages" in str((await call(tool, query="x")).content)


async def test_retriever_failure_is_reported(registry: ToolRegistry, settings: Settings) -> None:
    async def broken(query: str) -> list[RetrievedChunk]:
        raise ConnectionError("database went away")

    tool = build(registry, settings, "retrieval", retriever=broken)
    message = await call(tool, query="x")
    assert message.status == "error"
    assert "retrieval failed unexpectedly (ConnectionError)" in str(message.content)


def test_description_override(registry: ToolRegistry, settings: Settings) -> None:
    assert build(registry, settings, "retrieval").description == DEFAULT_DESCRIPTION
    entry = {"type": "retrieval", "config": {"description": "Company handbook (HR policies)."}}
    assert build(registry, settings, entry).description == "Company handbook (HR policies)."
    with pytest.raises(ValueError, match="description"):
        registry.get("retrieval").validate_config({"description": ""})
    with pytest.raises(ValueError, match="Extra inputs"):
        registry.get("retrieval").validate_config({"doc_ids": ["a"]})
