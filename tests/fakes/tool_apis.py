"""One local HTTP server faking the public APIs Loom's tools speak, plus pages to fetch.

Starlette app served by uvicorn in a background thread on ``127.0.0.1`` (a free port).
Path prefixes:

* ``/wikipedia/w/api.php``       MediaWiki action API (``list=search``; ``prop=extracts|info``)
* ``/ddg/html/``                 DuckDuckGo's HTML result page (with an ad to skip)
* ``/arxiv/api/query``           arXiv Atom feed
* ``/pubmed/entrez/eutils/``     E-utilities ``esearch.fcgi`` (JSON) and ``efetch.fcgi`` (XML)
* ``/tavily/search``             Tavily ``POST /search`` (checks the API key -> 401)

and for the web fetcher: ``/page.html``, ``/plain.txt``, ``/image.png``, ``/big`` (64 KiB),
``/redirect?to=<url>``, ``/redirect-chain?n=<k>``, ``/slow?seconds=<s>``, ``/echo-host``,
``/admin``, and ``/bomb?enc=<coding>[,<coding>]&mib=<n>`` (``n`` MiB of text, compressed
with the given ``Content-Encoding`` chain: a decompression bomb). Every request is
recorded; ``fail(prefix, status)`` makes a prefix answer an error.

Use::

    with FakeToolApis() as fake:
        settings = fake.settings(tavily_api_key=TAVILY_KEY)
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape
from types import TracebackType
from typing import Any
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from loom.settings import Settings

TAVILY_KEY = "tvly-test-0123456789"
NO_RESULTS = "zzqxnothingmatches"  # a query every fake search answers with zero results

# --- Wikipedia ---------------------------------------------------------------------------------

WIKI_PAGES: dict[int, dict[str, Any]] = {
    21_391_751: {
        "title": "Alan Turing",
        "extract": (
            "Alan Mathison Turing (23 June 1912 – 7 June 1954) was an English mathematician, "
            "computer scientist, logician, cryptanalyst, philosopher and theoretical biologist. "
            "He was highly influential in the development of theoretical computer science."
        ),
        "snippet": 'Alan Mathison <span class="searchmatch">Turing</span> was an English '
        "mathematician",
    },
    30_403: {
        "title": "Turing machine",
        "extract": (
            "A Turing machine is a mathematical model of computation describing an abstract "
            "machine that manipulates symbols on a strip of tape according to a table of rules."
        ),
        "snippet": 'A <span class="searchmatch">Turing</span> machine is a mathematical model',
    },
    21_391: {
        "title": "Turing test",
        "extract": (
            "The Turing test, originally called the imitation game by Alan Turing in 1949, is a "
            "test of a machine's ability to exhibit intelligent behaviour equivalent to that of "
            "a human."
        ),
        "snippet": 'The <span class="searchmatch">Turing</span> test, originally called the '
        "imitation game",
    },
}

# --- DuckDuckGo ---------------------------------------------------------------------------------

DDG_RESULTS = [
    (
        "https://www.python.org/",
        "Welcome to <b>Python</b>.org",
        "The official home of the <b>Python</b> Programming Language.",
    ),
    (
        "https://docs.python.org/3/tutorial/",
        "The <b>Python</b> Tutorial — Python 3 documentation",
        "<b>Python</b> is an easy to learn, powerful programming language.",
    ),
    (
        "https://en.wikipedia.org/wiki/Python_(programming_language)",
        "<b>Python</b> (programming language) - Wikipedia",
        "<b>Python</b> is a high-level, general-purpose programming language.",
    ),
]


def _ddg_page(query: str) -> str:
    if NO_RESULTS in query:
        results = '<div class="no-results">No results.</div>'
    else:
        ad = (
            '<div class="result results_links results_links_deep result--ad ">'
            '<div class="links_main links_deep result__body"><h2 class="result__title">'
            '<a rel="nofollow" class="result__a" href="https://duckduckgo.com/y.js?ad_domain='
            'ads.example&amp;ad_provider=bing">Buy Python Now</a></h2>'
            '<a class="result__snippet" href="https://duckduckgo.com/y.js?ad_domain=ads.example">'
            "Sponsored</a></div></div>"
        )
        organic = "".join(
            '<div class="result results_links results_links_deep web-result ">'
            '<div class="links_main links_deep result__body"><h2 class="result__title">'
            f'<a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg={quote(url, "")}'
            f'&amp;rut=abc{i}">{title}</a></h2>'
            '<div class="result__extras"><div class="result__extras__url">'
            f'<a class="result__url" href="{escape(url)}">{escape(url)}</a></div></div>'
            f'<a class="result__snippet" href="{escape(url)}">{snippet}</a>'
            '<div class="clear"></div></div></div>'
            for i, (url, title, snippet) in enumerate(DDG_RESULTS)
        )
        results = ad + organic
    return (
        "<!DOCTYPE html><html><head><title>"
        f"{escape(query)} at DuckDuckGo</title><style>.result{{margin:0}}</style></head>"
        f'<body><div id="links" class="results">{results}</div></body></html>'
    )


# --- arXiv --------------------------------------------------------------------------------------

ARXIV_ENTRIES: list[dict[str, Any]] = [
    {
        "id": "1706.03762v7",
        "published": "2017-06-12T17:57:34Z",
        "title": "Attention Is All You Need",
        "summary": "The dominant sequence transduction models are based on complex recurrent or "
        "convolutional neural networks. We propose a new simple network architecture, the "
        "Transformer, based solely on attention mechanisms.",
        "authors": ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar"],
    },
    {
        "id": "1810.04805v2",
        "published": "2018-10-11T00:50:01Z",
        "title": "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        "summary": "We introduce a new language representation model called BERT, which stands "
        "for Bidirectional Encoder Representations from Transformers.",
        "authors": ["Jacob Devlin", "Ming-Wei Chang"],
    },
]


def _arxiv_feed(title: str, entries: list[dict[str, Any]]) -> str:
    body = "".join(
        "<entry>"
        f"<id>http://arxiv.org/abs/{e['id']}</id>"
        f"<updated>{e['published']}</updated><published>{e['published']}</published>"
        f"<title>{escape(e['title'])}</title>"
        f"<summary>  {escape(e['summary'])}\n</summary>"
        + "".join(f"<author><name>{escape(a)}</name></author>" for a in e["authors"])
        + f'<link href="http://arxiv.org/abs/{e["id"]}" rel="alternate" type="text/html"/>'
        f'<link title="pdf" href="http://arxiv.org/pdf/{e["id"]}" rel="related"/>'
        '<arxiv:primary_category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>'
        "</entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        f"<title>arXiv Query: {escape(title)}</title>"
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
        f"{body}</feed>"
    )


ARXIV_ERROR_FEED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv Query: error</title>'
    "<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id>"
    "<title>Error</title><summary>incorrect id format for 1234</summary></entry></feed>"
)


# --- PubMed -------------------------------------------------------------------------------------

PUBMED_ARTICLES: dict[str, dict[str, Any]] = {
    "38012345": {
        "title": "Sleep duration and cardiometabolic risk in adults: a cohort study.",
        "journal": "Journal of Example Medicine",
        "year": "2023",
        "month": "Nov",
        "authors": [("Garcia", "M"), ("Chen", "L")],
        "abstract": [
            ("BACKGROUND", "Short sleep has been linked to cardiometabolic disease."),
            ("RESULTS", "Each additional hour of sleep was associated with lower risk."),
        ],
    },
    "37654321": {
        "title": "Effects of <i>structured</i> exercise on sleep quality: a trial.",
        "journal": "Example Sleep Research",
        "year": "2022",
        "month": "Mar",
        "authors": [("Okafor", "A")],
        "abstract": [(None, "Structured exercise improved sleep quality scores.")],
    },
}


def _pubmed_xml(ids: list[str]) -> str:
    articles = []
    for pmid in ids:
        a = PUBMED_ARTICLES.get(pmid)
        if a is None:
            continue
        authors = "".join(
            f'<Author ValidYN="Y"><LastName>{last}</LastName><ForeName>X</ForeName>'
            f"<Initials>{initials}</Initials></Author>"
            for last, initials in a["authors"]
        )
        abstract = "".join(
            f'<AbstractText Label="{label}">{text}</AbstractText>'
            if label
            else f"<AbstractText>{text}</AbstractText>"
            for label, text in a["abstract"]
        )
        articles.append(
            '<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">'
            f'<PMID Version="1">{pmid}</PMID><Article PubModel="Print">'
            f"<Journal><JournalIssue><PubDate><Year>{a['year']}</Year>"
            f"<Month>{a['month']}</Month></PubDate></JournalIssue>"
            f"<Title>{a['journal']}</Title></Journal>"
            f"<ArticleTitle>{a['title']}</ArticleTitle>"
            f"<Abstract>{abstract}</Abstract>"
            f'<AuthorList CompleteYN="Y">{authors}</AuthorList>'
            "</Article></MedlineCitation></PubmedArticle>"
        )
    return (
        '<?xml version="1.0" ?>\n'
        '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" '
        '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">\n'
        f"<PubmedArticleSet>{''.join(articles)}</PubmedArticleSet>"
    )


# --- Tavily -------------------------------------------------------------------------------------

TAVILY_RESULTS = [
    {
        "title": "LangGraph overview",
        "url": "https://langchain-ai.github.io/langgraph/",
        "content": "LangGraph is a library for building stateful, multi-actor applications "
        "with LLMs.",
        "score": 0.97,
        "raw_content": None,
    },
    {
        "title": "OpenGPTs on GitHub",
        "url": "https://github.com/langchain-ai/opengpts",
        "content": "An open source effort to create a similar experience to OpenAI's GPTs.",
        "score": 0.91,
        "raw_content": None,
    },
]

# --- pages for the fetcher ----------------------------------------------------------------------

PAGE_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Loom test page</title>
<style>body { color: red; } .secret-style { display: none }</style>
<script>var secretScript = "do not show";</script></head>
<body><nav>Home | About</nav>
<h1>Weaving agents</h1>
<p>Loom runs <b>LangGraph</b> agents &amp; keeps their threads.</p>
<ul><li>First point</li><li>Second point</li></ul>
<noscript>enable javascript</noscript>
<script type="module">console.log("also hidden")</script>
</body></html>
"""
BIG_SIZE = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeToolApis:
    """The fake server. ``start()``/``stop()`` or ``with FakeToolApis() as fake:``."""

    def __init__(self, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
        """With a certificate and key the server speaks HTTPS (``base_url`` says so)."""
        self._ssl = (ssl_certfile, ssl_keyfile)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl[0] else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> FakeToolApis:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=self._ssl[0],
            ssl_keyfile=self._ssl[1],
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake tool API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeToolApis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- test controls -------------------------------------------------------------------------
    def fail(self, prefix: str, status: int = 500) -> None:
        """Make every request under ``prefix`` (e.g. ``"/wikipedia"``) answer ``status``."""
        with self._lock:
            self._failures[prefix] = status

    def reset(self) -> None:
        """Forget recorded requests and failures."""
        with self._lock:
            self._failures.clear()
            self.requests.clear()

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def settings(self, **overrides: Any) -> Settings:
        """Settings with every tool base URL pointing at this server.

        The fetcher may reach private addresses (this server is on 127.0.0.1) unless the
        caller overrides ``fetch_allow_private``; Tavily gets a valid key unless overridden.
        """
        values: dict[str, Any] = {
            "wikipedia_base_url": f"{self.base_url}/wikipedia/w/api.php",
            "ddg_base_url": f"{self.base_url}/ddg/html/",
            "arxiv_base_url": f"{self.base_url}/arxiv/api/query",
            "pubmed_base_url": f"{self.base_url}/pubmed/entrez/eutils/",
            "tavily_base_url": f"{self.base_url}/tavily",
            "tavily_api_key": TAVILY_KEY,
            "tool_timeout_seconds": 5.0,
            "fetch_allow_private": True,
        }
        values.update(overrides)
        return Settings(**values)

    # --- the app -------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        async def record(request: Request, call_next: Any) -> Response:
            body = await request.body()
            with self._lock:
                self.requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.url.path,
                        params=dict(request.query_params),
                        headers=dict(request.headers),
                        body=body,
                    )
                )
                status = next(
                    (s for p, s in self._failures.items() if request.url.path.startswith(p)),
                    None,
                )
            if status is not None:
                return JSONResponse({"error": "injected failure"}, status_code=status)
            response: Response = await call_next(request)
            return response

        routes = [
            Route("/wikipedia/w/api.php", _wikipedia),
            Route("/ddg/html/", _ddg, methods=["GET", "POST"]),
            Route("/arxiv/api/query", _arxiv),
            Route("/pubmed/entrez/eutils/esearch.fcgi", _esearch),
            Route("/pubmed/entrez/eutils/efetch.fcgi", _efetch),
            Route("/tavily/search", _tavily, methods=["POST"]),
            Route("/page.html", lambda r: HTMLResponse(PAGE_HTML)),
            Route("/plain.txt", lambda r: PlainTextResponse("just some plain text\n")),
            Route("/image.png", _png),
            Route("/big", _big),
            Route("/redirect", _redirect),
            Route("/redirect-chain", _redirect_chain),
            Route("/slow", _slow),
            Route("/bomb", _bomb),
            Route("/echo-host", lambda r: PlainTextResponse(f"host={r.headers.get('host')}")),
            Route("/admin", lambda r: PlainTextResponse("admin secrets")),
        ]
        return Starlette(
            routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)]
        )


async def _wikipedia(request: Request) -> Response:
    q = request.query_params
    if q.get("action") != "query" or q.get("format") != "json":
        return JSONResponse({"error": {"code": "badparams", "info": "bad parameters"}})
    if q.get("list") == "search":
        term = q.get("srsearch", "")
        limit = int(q.get("srlimit", "10"))
        hits = [] if NO_RESULTS in term else list(WIKI_PAGES.items())[:limit]
        return JSONResponse(
            {
                "batchcomplete": True,
                "query": {
                    "searchinfo": {"totalhits": len(hits)},
                    "search": [
                        {"ns": 0, "title": p["title"], "pageid": pid, "snippet": p["snippet"]}
                        for pid, p in hits
                    ],
                },
            }
        )
    if "extracts" in q.get("prop", ""):
        ids = [int(i) for i in q.get("pageids", "").split("|") if i]
        several_ok = q.get("exintro") is not None  # like TextExtracts: one extract without it
        pages = []
        for n, pid in sorted(enumerate(ids), key=lambda item: item[1]):  # API order: by id
            page = WIKI_PAGES.get(pid)
            if page is None:
                pages.append({"pageid": pid, "missing": True})
                continue
            entry: dict[str, Any] = {"pageid": pid, "ns": 0, "title": page["title"]}
            if several_ok or n == 0:
                entry["extract"] = page["extract"]
            if "info" in q.get("prop", "") and q.get("inprop") == "url":
                slug = page["title"].replace(" ", "_")
                entry["fullurl"] = f"https://en.wikipedia.org/wiki/{slug}"
            pages.append(entry)
        return JSONResponse({"batchcomplete": True, "query": {"pages": pages}})
    return JSONResponse({"batchcomplete": True})


async def _ddg(request: Request) -> Response:
    query = request.query_params.get("q", "")
    if request.method == "POST":
        query = str((await request.form()).get("q", ""))
    return HTMLResponse(_ddg_page(query))


async def _arxiv(request: Request) -> Response:
    q = request.query_params
    max_results = int(q.get("max_results", "10"))
    if "id_list" in q:
        wanted = q["id_list"].split("v")[0]
        entries = [e for e in ARXIV_ENTRIES if e["id"].split("v")[0] == wanted]
        feed = _arxiv_feed(f"id_list={wanted}", entries[:max_results])
    elif q.get("search_query") == "all:error":
        feed = ARXIV_ERROR_FEED
    else:
        search = q.get("search_query", "")
        entries = [] if NO_RESULTS in search else ARXIV_ENTRIES[:max_results]
        feed = _arxiv_feed(f"search_query={search}", entries)
    return Response(feed, media_type="application/atom+xml")


async def _esearch(request: Request) -> Response:
    q = request.query_params
    term = q.get("term", "")
    retmax = int(q.get("retmax", "20"))
    if q.get("db") != "pubmed":
        return JSONResponse({"error": "Invalid db name specified: " + q.get("db", "")})
    ids = [] if NO_RESULTS in term else list(PUBMED_ARTICLES)[:retmax]
    return JSONResponse(
        {
            "header": {"type": "esearch", "version": "0.3"},
            "esearchresult": {
                "count": str(len(ids)),
                "retmax": str(len(ids)),
                "retstart": "0",
                "idlist": ids,
                "translationset": [],
                "querytranslation": term,
            },
        }
    )


async def _efetch(request: Request) -> Response:
    ids = [i for i in request.query_params.get("id", "").split(",") if i]
    return Response(_pubmed_xml(ids), media_type="text/xml")


async def _tavily(request: Request) -> Response:
    body = await request.json()
    if body.get("api_key") != TAVILY_KEY:
        return JSONResponse({"detail": {"error": "Unauthorized: missing or invalid API key."}}, 401)
    query = str(body.get("query", ""))
    results = [] if NO_RESULTS in query else TAVILY_RESULTS[: int(body.get("max_results", 5))]
    return JSONResponse(
        {
            "query": query,
            "follow_up_questions": None,
            "answer": None,
            "images": [],
            "results": results,
            "response_time": 0.42,
        }
    )


async def _big(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        line = b"0123456789abcdef" * 63 + b"0123456789abcde\n"  # 1 KiB
        for _ in range(BIG_SIZE // len(line)):
            yield line

    return StreamingResponse(chunks(), media_type="text/plain")


async def _png(request: Request) -> Response:
    return Response(b"\x89PNG\r\n\x1a\n" + bytes(64), media_type="image/png")


async def _redirect(request: Request) -> Response:
    target = request.query_params.get("to", "/page.html")
    status = int(request.query_params.get("status", "302"))
    return Response(status_code=status, headers={"Location": target})


async def _redirect_chain(request: Request) -> Response:
    n = int(request.query_params.get("n", "0"))
    if n <= 0:
        return PlainTextResponse("end of chain")
    return Response(status_code=302, headers={"Location": f"/redirect-chain?n={n - 1}"})


@functools.cache
def bomb_body(codings: tuple[str, ...], mib: int) -> bytes:
    """``mib`` MiB of one repeated letter, compressed with ``codings`` in order."""
    block = b"a" * (1 << 20)
    body = b""
    for i, coding in enumerate(codings):
        if coding == "zstd":
            import zstandard

            compressor = zstandard.ZstdCompressor(level=3).compressobj()
            if i == 0:
                parts = [compressor.compress(block) for _ in range(mib)]
            else:
                parts = [compressor.compress(body)]
            body = b"".join(parts) + compressor.flush()
        else:
            wbits = 31 if coding == "gzip" else 15
            z = zlib.compressobj(9, zlib.DEFLATED, wbits)
            parts = [z.compress(block) for _ in range(mib)] if i == 0 else [z.compress(body)]
            body = b"".join(parts) + z.flush()
    return body


async def _bomb(request: Request) -> Response:
    codings = tuple(c.strip() for c in request.query_params.get("enc", "gzip").split(","))
    mib = int(request.query_params.get("mib", "512"))
    body = await asyncio.to_thread(bomb_body, codings, mib)
    return Response(body, media_type="text/plain", headers={"Content-Encoding": ", ".join(codings)})


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "3")))
    return PlainTextResponse("finally")
