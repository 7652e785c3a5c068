"""PubMed search, spoken directly to NCBI's E-utilities with httpx.

1. ``esearch.fcgi?db=pubmed&term=<q>&retmax=<n>&retmode=json&sort=relevance`` for PMIDs;
2. ``efetch.fcgi?db=pubmed&id=<pmids>&rettype=abstract&retmode=xml`` for titles, journals,
   dates, authors and abstracts (``PubmedArticleSet`` XML).

Both relative to ``settings.pubmed_base_url`` (default
``https://eutils.ncbi.nlm.nih.gov/entrez/eutils/``). An NCBI API key (higher rate limit) is
sent when a ``pubmed_api_key`` setting exists and is set. LangChain's wrapper uses blocking
``urllib`` with no timeout, hence this small client.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, SecretStr

from loom.tools._http import api_client, api_request
from loom.tools.base import ToolConfig, ToolContext, ToolSpec, clip, make_tool


class PubmedConfig(ToolConfig):
    max_results: int = Field(default=3, ge=1, le=10, description="Articles to return per query.")
    max_chars_per_abstract: int = Field(default=1500, ge=100, le=4000)


class PubmedInput(BaseModel):
    query: str = Field(min_length=1, max_length=400, description="search query to look up")


def _text(element: ElementTree.Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _authors(article: ElementTree.Element) -> str:
    names: list[str] = []
    for author in article.findall("AuthorList/Author"):
        collective = _text(author.find("CollectiveName"))
        name = collective or " ".join(
            part
            for part in (_text(author.find("LastName")), _text(author.find("Initials")))
            if part
        )
        if name:
            names.append(name)
    if len(names) > 6:
        names = [*names[:6], "et al."]
    return ", ".join(names)


def _abstract(article: ElementTree.Element) -> str:
    parts: list[str] = []
    for section in article.findall("Abstract/AbstractText"):
        label = section.get("Label")
        text = _text(section)
        parts.append(f"{label}: {text}" if label else text)
    return " ".join(p for p in parts if p)


def _published(article: ElementTree.Element) -> str:
    date = article.find("Journal/JournalIssue/PubDate")
    if date is None:
        return ""
    medline = _text(date.find("MedlineDate"))
    if medline:
        return medline
    return " ".join(
        _text(date.find(tag)) for tag in ("Year", "Month", "Day") if _text(date.find(tag))
    )


def format_articles(xml: bytes, order: list[str], max_chars: int) -> list[str]:
    """One text block per ``PubmedArticle``, in the ranking order of ``order`` (PMIDs)."""
    root = ElementTree.fromstring(xml)
    blocks: dict[str, str] = {}
    for item in root.findall("PubmedArticle"):
        citation = item.find("MedlineCitation")
        article = citation.find("Article") if citation is not None else None
        if citation is None or article is None:
            continue
        pmid = _text(citation.find("PMID"))
        lines = [
            f"Published: {_published(article)}",
            f"Title: {_text(article.find('ArticleTitle'))}",
            f"Journal: {_text(article.find('Journal/Title'))}",
            f"Authors: {_authors(article)}",
            f"URL: https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
            f"Abstract: {clip(_abstract(article), max_chars) or '(no abstract)'}",
        ]
        blocks[pmid] = "\n".join(lines)
    return [blocks[pmid] for pmid in order if pmid in blocks]


def _api_key_param(ctx: ToolContext) -> dict[str, str]:
    key: Any = getattr(ctx.settings, "pubmed_api_key", None)
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return {"api_key": str(key)} if key else {}


def _build(ctx: ToolContext, config: PubmedConfig) -> BaseTool:
    settings = ctx.settings
    base = settings.pubmed_base_url.rstrip("/") + "/"
    common = {"db": "pubmed", "tool": "loom", **_api_key_param(ctx)}

    async def search(query: str) -> str:
        async with api_client(settings) as client:
            found = await api_request(
                client,
                "GET",
                base + "esearch.fcgi",
                service="PubMed",
                limit=settings.fetch_max_bytes,
                params={
                    **common,
                    "term": query,
                    "retmax": str(config.max_results),
                    "retmode": "json",
                    "sort": "relevance",
                },
            )
            result: dict[str, Any] = found.json().get("esearchresult", {})
            if result.get("ERROR"):
                raise ValueError(f"PubMed rejected the query: {result['ERROR']}")
            pmids = [str(pmid) for pmid in result.get("idlist", [])][: config.max_results]
            if not pmids:
                return f"No PubMed articles found for {query!r}."
            fetched = await api_request(
                client,
                "GET",
                base + "efetch.fcgi",
                service="PubMed",
                limit=settings.fetch_max_bytes,
                params={**common, "id": ",".join(pmids), "rettype": "abstract", "retmode": "xml"},
            )
        blocks = format_articles(fetched.content, pmids, config.max_chars_per_abstract)
        if not blocks:
            return f"No PubMed articles found for {query!r}."
        return clip("\n\n".join(blocks), 12_000)

    return make_tool(
        name="pubmed",
        description=(
            "Search PubMed for biomedical and life-science literature. Returns titles, "
            "journals, dates, authors, links and abstracts. Input: a search query."
        ),
        args_schema=PubmedInput,
        coroutine=search,
        timeout_seconds=settings.tool_timeout_seconds,
    )


def spec() -> ToolSpec[PubmedConfig]:
    return ToolSpec(
        id="pubmed",
        name="PubMed",
        description="Searches PubMed for biomedical literature and returns abstracts.",
        config_model=PubmedConfig,
        builder=_build,
        aliases=("PubMed", "pub_med", "pub_med_search", "pubmed_search"),
    )
