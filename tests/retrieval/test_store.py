"""The vector store and the retriever at the Python level: the HNSW index is usable by the
search query (EXPLAIN), search order and namespace filtering, the retriever's namespaces, and
ingest progress."""

from __future__ import annotations

import io
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import pytest
from langchain_core.runnables import RunnableLambda
from pgvector.psycopg import register_vector_async

from loom.db.migrate import migrate
from loom.db.pool import open_pool
from loom.db.types import Pool
from loom.retrieval import open_retrieval
from loom.retrieval.ingest import IngestService, Progress, Target
from loom.retrieval.loaders import Upload
from loom.retrieval.retriever import PgRetriever, namespaces_of, run_namespaces
from loom.retrieval.store import ChunkRow, VectorStore, vector_literal
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    settings = make_settings(database_url)
    pool = await open_pool(database_url, settings)
    async with pool.connection() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def retrieval(
    pool: Pool, database_url: str, fake_llm: FakeOpenAI, provider_http: httpx2.AsyncClient
) -> AsyncIterator[tuple[PgRetriever, IngestService]]:
    settings = make_settings(database_url, fake_llm)
    async with AsyncExitStack() as stack:
        yield await open_retrieval(settings, pool, stack, http=provider_http)


def _unit(vector: list[float]) -> list[float]:
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector]


async def _fill(store: VectorStore, pool: Pool, namespace: str, vectors: list[list[float]]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await store.add(
            conn,
            namespace,
            [
                ChunkRow(
                    f"chunk {i}",
                    {"source": f"{i}.txt", "chunk": 0},
                    vector_literal(v),
                    uuid.uuid4(),
                )
                for i, v in enumerate(vectors)
            ],
        )


async def _plan(
    pool: Pool, store: VectorStore, namespaces: list[str], k: int = 4, force: bool = True
) -> str:
    params = {"query": vector_literal([1.0] * store.dimensions), "namespaces": namespaces, "k": k}
    async with pool.connection() as conn, conn.transaction():
        await register_vector_async(conn)  # the query vector is sent in binary
        await conn.execute("ANALYZE document")
        if force:
            # For a small namespace the planner rightly prefers the namespace index and a sort;
            # ruling those out shows the HNSW index matches the query's expression and predicate.
            await conn.execute("SET LOCAL enable_seqscan = off")
            await conn.execute("SET LOCAL enable_sort = off")
        cur = await conn.execute(b"EXPLAIN " + store.search_sql.encode(), params)
        return "\n".join(str(row["QUERY PLAN"]) for row in await cur.fetchall())


@pytest.mark.parametrize(("dims", "cast"), [(8, "vector(8)"), (3072, "halfvec(3072)")])
async def test_hnsw_index_is_used(pool: Pool, dims: int, cast: str) -> None:
    store = VectorStore(pool, dims)
    await store.ensure_index()
    await store.ensure_index()  # idempotent
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (store.index_name,)
        )
        row = await cur.fetchone()
    assert row is not None
    assert "USING hnsw" in row["indexdef"] and cast in row["indexdef"]
    rng = random.Random(dims)
    count = 300 if dims == 8 else 20
    vectors = [_unit([rng.uniform(-1, 1) for _ in range(dims)]) for _ in range(count)]
    await _fill(store, pool, f"assistant:{uuid.uuid4()}", vectors)
    plan = await _plan(pool, store, [f"assistant:{uuid.uuid4()}", f"thread:{uuid.uuid4()}"])
    assert f"Index Scan using {store.index_name}" in plan, plan


async def test_search_order_and_namespaces(pool: Pool) -> None:
    store = VectorStore(pool, 8)
    await store.ensure_index()
    mine, other = f"assistant:{uuid.uuid4()}", f"thread:{uuid.uuid4()}"
    foreign = f"assistant:{uuid.uuid4()}"
    target = _unit([1.0, 0, 0, 0, 0, 0, 0, 0])
    near = [_unit([1.0, 0.1 * i, 0, 0, 0, 0, 0, 0]) for i in range(1, 6)]  # nearest first
    await _fill(store, pool, mine, near[:3])
    await _fill(store, pool, other, near[3:])
    await _fill(store, pool, foreign, [target] * 50)  # exact matches, but not ours
    # many more rows elsewhere, so the filtered HNSW scan has to keep going
    rng = random.Random(1)
    await _fill(
        store, pool, f"assistant:{uuid.uuid4()}",
        [_unit([rng.uniform(-1, 1) for _ in range(8)]) for _ in range(500)],
    )  # fmt: skip
    found = await store.search([mine, other], target, k=4)
    assert [c.content for c in found] == ["chunk 0", "chunk 1", "chunk 2", "chunk 0"]
    assert [c.metadata["namespace"] for c in found] == [mine, mine, mine, other]
    assert found[0].score == pytest.approx(1 - (1 - near[0][0]), abs=1e-5)
    assert all(a.score >= b.score for a, b in itertools.pairwise(found))
    assert found[0].source == "0.txt"
    assert await store.search([], target, k=4) == []
    assert await store.search([f"thread:{uuid.uuid4()}"], target, k=4) == []


def test_namespaces_of() -> None:
    aid, tid = uuid.uuid4(), uuid.uuid4()
    assert namespaces_of({"configurable": {"assistant_id": str(aid), "thread_id": str(tid)}}) == [
        f"assistant:{aid}",
        f"thread:{tid}",
    ]
    assert namespaces_of({"configurable": {"thread_id": str(tid), "assistant_id": None}}) == [
        f"thread:{tid}"
    ]
    assert namespaces_of({"configurable": {"assistant_id": "x' OR 1=1"}}) == []
    assert namespaces_of({}) == []
    assert namespaces_of(None) == []


async def test_retriever_outside_a_run_is_empty(
    retrieval: tuple[PgRetriever, IngestService], fake_llm: FakeOpenAI
) -> None:
    retriever, _ = retrieval
    assert run_namespaces() == []
    assert await retriever("anything") == []
    assert fake_llm.embedding_requests == []


async def test_retriever_reads_the_run_config(
    retrieval: tuple[PgRetriever, IngestService], pool: Pool
) -> None:
    retriever, service = retrieval
    aid, tid = uuid.uuid4(), uuid.uuid4()
    await _assistant(pool, aid)
    text = b"Kingfishers dive for fish."
    upload = Upload("k.txt", None, io.BytesIO(text), len(text))
    await service.ingest(Target("assistant", aid, "u"), [upload])

    async def search(query: str) -> list[Any]:
        return await retriever(query)

    runnable = RunnableLambda(search)
    found = await runnable.ainvoke(
        "kingfishers", {"configurable": {"assistant_id": str(aid), "thread_id": str(tid)}}
    )
    assert [c.content for c in found] == ["Kingfishers dive for fish."]
    other = await runnable.ainvoke("kingfishers", {"configurable": {"assistant_id": str(tid)}})
    assert other == []


async def _assistant(pool: Pool, assistant_id: uuid.UUID) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO assistant (assistant_id, user_id, name, config)"
            " VALUES (%s, 'u', 'a', '{}')",
            (assistant_id,),
        )


class Recorder(Progress):
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    async def files(self, done: int) -> None:
        self.events.append(("files", done, 0))

    async def chunks(self, done: int, total: int) -> None:
        self.events.append(("chunks", done, total))


async def test_progress_is_reported_per_file_and_window(
    retrieval: tuple[PgRetriever, IngestService], pool: Pool
) -> None:
    _, service = retrieval
    aid = uuid.uuid4()
    await _assistant(pool, aid)
    words = " ".join(f"w{i}" for i in range(60_000)).encode()  # ~400 chunks of 1000 chars
    uploads = [
        Upload("a.txt", None, io.BytesIO(words), len(words)),
        Upload("b.txt", None, io.BytesIO(b"short"), 5),
    ]
    recorder = Recorder()
    results = await service.ingest(Target("assistant", aid, "u"), uploads, recorder)
    total = sum(r.chunks for r in results)
    assert total > 256
    assert recorder.events[:2] == [("files", 1, 0), ("files", 2, 0)]
    chunk_events = recorder.events[2:]
    assert chunk_events[0] == ("chunks", 0, total)
    assert chunk_events[1] == ("chunks", 256, total)  # one window: 4 batches of 64
    assert chunk_events[-1] == ("chunks", total, total)


async def test_target_deleted_during_ingest_stores_nothing(
    retrieval: tuple[PgRetriever, IngestService], pool: Pool
) -> None:
    _, service = retrieval
    gone = uuid.uuid4()  # no such assistant (deleted before the commit)
    upload = Upload("x.txt", None, io.BytesIO(b"orphan?"), 7)
    with pytest.raises(Exception, match="Assistant not found"):
        await service.ingest(Target("assistant", gone, "u"), [upload])
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM document WHERE namespace = %s", (f"assistant:{gone}",)
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] == 0
