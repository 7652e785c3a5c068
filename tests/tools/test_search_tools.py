"""Wikipedia, DuckDuckGo, arXiv, PubMed and Tavily against the local fake APIs."""

from __future__ import annotations

import pytest

from loom.settings import Settings
from loom.tools.arxiv import ArxivConfig, query_params
from loom.tools.base import ToolConfigError
from loom.tools.ddg_search import parse_results
from loom.tools.registry import ToolRegistry
from loom.tools.wikipedia import api_url
from tests.fakes.tool_apis import NO_RESULTS, TAVILY_KEY, FakeToolApis

from .helpers import build, call

# --- Wikipedia ------------------------------------------------------------------------------


async def test_wikipedia(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    tool = build(registry, settings, {"type": "wikipedia", "config": {"top_k_results": 2}})
    message = await call(tool, query="Turing")
    assert message.status == "success"
    text = str(message.content)
    assert "Page: Alan Turing" in text
    assert "URL: https://en.wikipedia.org/wiki/Alan_Turing" in text
    assert "English mathematician, computer scientist" in text
    assert "Page: Turing machine" in text
    assert "mathematical model of computation" in text  # the second extract came back too
    assert "Turing test" not in text  # top_k_results=2
    assert text.index("Alan Turing") < text.index("Turing machine")  # search rank, not page id
    search, details = fake.requests_to("/wikipedia")
    assert search.params["list"] == "search"
    assert search.params["srsearch"] == "Turing"
    assert search.params["srlimit"] == "2"
    assert details.params["pageids"] == "21391751|30403"
    assert details.params["exintro"] == "1"
    assert details.params["explaintext"] == "1"


async def test_wikipedia_no_results(registry: ToolRegistry, settings: Settings) -> None:
    message = await call(build(registry, settings, "Wikipedia"), query=NO_RESULTS)
    assert message.status == "success"
    assert "No Wikipedia pages found" in str(message.content)


def test_wikipedia_language_urls() -> None:
    default = "https://en.wikipedia.org/w/api.php"
    assert api_url(default, None) == default
    assert api_url(default, "de") == "https://de.wikipedia.org/w/api.php"
    assert api_url("https://{lang}.wikipedia.org/w/api.php", "fr") == (
        "https://fr.wikipedia.org/w/api.php"
    )
    assert api_url("http://127.0.0.1:9/wikipedia/w/api.php", "de") == (
        "http://127.0.0.1:9/wikipedia/w/api.php"
    )


@pytest.mark.parametrize(
    "config",
    [{"top_k_results": 0}, {"top_k_results": 11}, {"lang": "EN!"}, {"unknown": 1}],
)
def test_wikipedia_config_validation(registry: ToolRegistry, config: dict[str, object]) -> None:
    with pytest.raises(ToolConfigError):
        registry.get("wikipedia").validate_config(config)


# --- DuckDuckGo -----------------------------------------------------------------------------


async def test_ddg(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    entry = {"type": "ddg_search", "config": {"max_results": 2, "region": "de-de"}}
    message = await call(build(registry, settings, entry), query="python")
    text = str(message.content)
    assert message.status == "success"
    assert "Title: Welcome to Python.org\nURL: https://www.python.org/" in text
    assert "The official home of the Python Programming Language." in text
    assert "https://docs.python.org/3/tutorial/" in text
    assert "wikipedia" not in text  # max_results=2
    assert "Buy Python Now" not in text and "y.js" not in text  # the ad is skipped
    [request] = fake.requests_to("/ddg")
    assert request.params == {"q": "python", "kl": "de-de", "kp": "-1"}


async def test_ddg_no_results(registry: ToolRegistry, settings: Settings) -> None:
    message = await call(build(registry, settings, "DDG Search"), query=NO_RESULTS)
    assert "No DuckDuckGo results" in str(message.content)


def test_ddg_parser_is_tolerant() -> None:
    html = (
        '<div class="result"><a class="result__a" href="https://example.org/a">A <b>one</b>'
        '</a><div class="result__snippet">first <i>snippet</i></div>'
        '<a class="result__a" href="/relative">skipped</a>'
        "<a class=result__a href=https://example.org/b>B</a>"  # unclosed, unquoted
    )
    results = parse_results(html)
    assert [(r.title, r.url, r.snippet) for r in results] == [
        ("A one", "https://example.org/a", "first snippet"),
        ("B", "https://example.org/b", ""),
    ]


# --- arXiv ----------------------------------------------------------------------------------


async def test_arxiv(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    entry = {"type": "arxiv", "config": {"max_results": 2, "sort_by": "submittedDate"}}
    message = await call(build(registry, settings, entry), query="transformers attention")
    text = str(message.content)
    assert message.status == "success"
    assert "Title: Attention Is All You Need" in text
    assert "Authors: Ashish Vaswani, Noam Shazeer, Niki Parmar" in text
    assert "Published: 2017-06-12" in text
    assert "URL: http://arxiv.org/abs/1706.03762v7" in text
    assert "Transformer, based solely on attention mechanisms" in text
    assert "Title: BERT: Pre-training" in text
    [request] = fake.requests_to("/arxiv")
    assert request.params == {
        "search_query": "all:transformers attention",
        "start": "0",
        "max_results": "2",
        "sortBy": "submittedDate",
        "sortOrder": "descending",
    }


async def test_arxiv_by_id(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    message = await call(build(registry, settings, "arxiv"), query="1810.04805")
    assert "BERT" in str(message.content)
    assert "Attention Is All You Need" not in str(message.content)
    assert fake.requests_to("/arxiv")[0].params["id_list"] == "1810.04805"


def test_arxiv_query_params() -> None:
    config = ArxivConfig()
    assert query_params("ti:attention AND au:vaswani", config)["search_query"] == (
        "ti:attention AND au:vaswani"
    )
    assert query_params("arXiv:1706.03762v5", config)["id_list"] == "1706.03762v5"
    assert query_params("hep-th/9901001", config)["id_list"] == "hep-th/9901001"


async def test_arxiv_api_error_entry(registry: ToolRegistry, settings: Settings) -> None:
    message = await call(build(registry, settings, "arxiv"), query="error")
    assert message.status == "error"
    assert "arXiv rejected the query: incorrect id format" in str(message.content)


async def test_arxiv_no_results(registry: ToolRegistry, settings: Settings) -> None:
    message = await call(build(registry, settings, "arxiv"), query=NO_RESULTS)
    assert "No arXiv papers found" in str(message.content)


# --- PubMed ---------------------------------------------------------------------------------


async def test_pubmed(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    message = await call(build(registry, settings, "PubMed"), query="sleep")
    text = str(message.content)
    assert message.status == "success"
    assert "Title: Sleep duration and cardiometabolic risk in adults" in text
    assert "Journal: Journal of Example Medicine" in text
    assert "Published: 2023 Nov" in text
    assert "Authors: Garcia M, Chen L" in text
    assert "URL: https://pubmed.ncbi.nlm.nih.gov/38012345/" in text
    assert "BACKGROUND: Short sleep has been linked" in text
    assert "Effects of structured exercise on sleep quality" in text  # inline markup flattened
    assert text.index("38012345") < text.index("37654321")  # esearch ranking kept
    search, fetch = fake.requests_to("/pubmed")
    assert search.path.endswith("/esearch.fcgi")
    assert search.params["db"] == "pubmed"
    assert search.params["term"] == "sleep"
    assert search.params["retmode"] == "json"
    assert fetch.path.endswith("/efetch.fcgi")
    assert fetch.params["id"] == "38012345,37654321"


async def test_pubmed_max_results_and_none(registry: ToolRegistry, settings: Settings) -> None:
    tool = build(registry, settings, {"type": "pubmed", "config": {"max_results": 1}})
    text = str((await call(tool, query="sleep")).content)
    assert "38012345" in text and "37654321" not in text
    message = await call(tool, query=NO_RESULTS)
    assert "No PubMed articles found" in str(message.content)


# --- Tavily ---------------------------------------------------------------------------------


async def test_tavily(registry: ToolRegistry, settings: Settings, fake: FakeToolApis) -> None:
    entry = {"type": "search_tavily", "config": {"max_results": 1, "search_depth": "advanced"}}
    message = await call(build(registry, settings, entry), query="what is langgraph")
    text = str(message.content)
    assert message.status == "success"
    assert "Title: LangGraph overview" in text
    assert "URL: https://langchain-ai.github.io/langgraph/" in text
    assert "stateful, multi-actor applications" in text
    assert "OpenGPTs" not in text
    [request] = fake.requests_to("/tavily")
    assert request.method == "POST"
    assert request.json() == {
        "api_key": TAVILY_KEY,
        "query": "what is langgraph",
        "max_results": 1,
        "search_depth": "advanced",
        "topic": "general",
    }
    assert request.headers["authorization"] == f"Bearer {TAVILY_KEY}"


async def test_tavily_bad_key(registry: ToolRegistry, fake: FakeToolApis) -> None:
    settings = fake.settings(tavily_api_key="tvly-wrong")
    message = await call(build(registry, settings, "Search (Tavily)"), query="x")
    assert message.status == "error"
    assert "Tavily rejected the API key (HTTP 401)" in str(message.content)


# --- failures become text, never exceptions --------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "prefix"),
    [
        ("wikipedia", "/wikipedia"),
        ("ddg_search", "/ddg"),
        ("arxiv", "/arxiv"),
        ("pubmed", "/pubmed"),
        ("search_tavily", "/tavily"),
    ],
)
async def test_api_error_is_reported_not_raised(
    registry: ToolRegistry, settings: Settings, fake: FakeToolApis, entry: str, prefix: str
) -> None:
    fake.fail(prefix, 500)
    tool = build(registry, settings, entry)
    message = await call(tool, query="anything")
    assert message.status == "error"
    assert str(message.content).startswith("Error: ")
    assert "HTTP 500" in str(message.content)
    # Plain invocation (no tool call) returns the same text instead of raising.
    assert "HTTP 500" in str(await tool.ainvoke({"query": "anything"}))


async def test_unreachable_api_is_reported(registry: ToolRegistry, fake: FakeToolApis) -> None:
    settings = fake.settings(wikipedia_base_url="http://127.0.0.1:9/w/api.php")
    message = await call(build(registry, settings, "wikipedia"), query="x")
    assert message.status == "error"
    assert "wikipedia: request failed" in str(message.content)


async def test_garbage_answer_is_reported(registry: ToolRegistry, fake: FakeToolApis) -> None:
    # /page.html is HTML, not an Atom feed nor JSON.
    settings = fake.settings(
        arxiv_base_url=f"{fake.base_url}/page.html",
        pubmed_base_url=f"{fake.base_url}/nowhere/",
    )
    message = await call(build(registry, settings, "arxiv"), query="x")
    assert message.status == "error"
    assert "could not read the service's answer" in str(message.content)
    message = await call(build(registry, settings, "pubmed"), query="x")
    assert message.status == "error"
    assert "HTTP 404" in str(message.content)


async def test_invalid_arguments_are_reported(registry: ToolRegistry, settings: Settings) -> None:
    tool = build(registry, settings, "wikipedia")
    message = await call(tool, query="")
    assert message.status == "error"
    assert "invalid arguments for wikipedia" in str(message.content)
    message = await call(tool, q="wrong name")
    assert message.status == "error"
