"""In-process measurements: the floor (same graph, no HTTP) and checkpoint growth."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from langchain_core.messages import HumanMessage

from loom.agents.graphs import SINK_KEY
from loom.agents.registry import AgentFactory, default_factory
from loom.agents.state import state_channels
from loom.db.migrate import prepare_schema
from loom.db.pool import open_pool
from loom.runs.fence import ClaimFence
from loom.settings import Settings
from loom.storage.checkpoints import LoomSaver

CHATBOT = {"configurable": {"type": "chatbot"}}


async def _factory(db_url: str, llm_url: str) -> tuple[AgentFactory, Any]:
    settings = Settings(
        database_url=db_url, openai_base_url=llm_url, openai_api_key="bench", db_pool_max=40
    )
    pool = await open_pool(db_url, settings)
    channels = state_channels(settings.checkpoint_snapshot_frequency)
    # Loom's saver and factory, as the server opens them
    saver = LoomSaver(pool, fence=ClaimFence(), channels=channels)
    async with pool.connection() as conn:
        await prepare_schema(conn, saver.setup)
    factory = default_factory(settings, saver, channels=channels)
    return factory, pool


class _Collect:
    """A token sink (what Loom's executor puts in a run's config) that keeps the text."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def text(self, message_id: str, delta: str) -> None:
        self.parts.append(delta)


async def _turn(graph: Any, thread: str, expect: str | None) -> None:
    sink = _Collect()
    config = {"configurable": {"thread_id": thread, SINK_KEY: sink}, "recursion_limit": 25}
    async for _update in graph.astream(
        {"messages": [HumanMessage(content="hello", id=str(uuid.uuid4()))]},
        config,
        stream_mode="updates",
    ):
        pass
    text = "".join(sink.parts)
    if expect is not None and text != expect:
        raise RuntimeError(f"reply mismatch: {text[:60]!r}")


async def in_process_floor(
    db_url: str, llm_url: str, concurrency: int, seconds: float, expect: str
) -> dict[str, float]:
    factory, pool = await _factory(db_url, llm_url)
    try:
        graph, _ = factory.graph(CHATBOT)
        threads = [str(uuid.uuid4()) for _ in range(concurrency)]
        await asyncio.gather(*(_turn(graph, t, expect) for t in threads))  # warm-up
        runs = 0
        stop_at = time.perf_counter() + seconds

        async def worker(thread: str) -> None:
            nonlocal runs
            while time.perf_counter() < stop_at:
                await _turn(graph, thread, expect)
                runs += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(t) for t in threads))
        cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
        return {
            "c": concurrency,
            "runs": runs,
            "runs_per_s": round(runs / elapsed, 1),
            "cpu_ms_per_run": round(1000 * cpu / runs, 1),
        }
    finally:
        await pool.close()


async def _thread_bytes(pool: Any, thread: str) -> int:
    total = 0
    async with pool.connection() as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            cur = await conn.execute(
                f"SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n FROM {table} t"
                " WHERE thread_id = %s",
                (thread,),
            )
            row = await cur.fetchone()
            total += int(row["n"])
    return total


async def checkpoint_growth(
    db_url: str, llm_url: str, turns: int
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Checkpoint bytes and time per turn over ``turns`` turns of one thread, in five
    intervals; and the turn time at the start and at the end, two ways:

    * ``first_ms`` / ``last_ms``: the median of turns 2-21 and of the last 20 (turn 1 pays
      for connections). Minutes apart, so the machine's drift is in the ratio too;
    * ``short_ms`` / ``long_ms``: after the last turn, 20 more turns of the long thread
      alternating with turns 22-41 of a short thread that ran its first 21 turns alongside
      the long thread's first: the same moment, so only the thread's length differs.
    """
    factory, pool = await _factory(db_url, llm_url)
    try:
        graph, _ = factory.graph(CHATBOT)
        thread, short = str(uuid.uuid4()), str(uuid.uuid4())
        step = max(1, turns // 5)
        out: list[dict[str, float]] = []
        previous_bytes, previous_turn = 0, 0
        started = time.perf_counter()
        times: list[float] = []
        for turn in range(1, turns + 1):
            t0 = time.perf_counter()
            await _turn(graph, thread, None)
            times.append(1000 * (time.perf_counter() - t0))
            if turn <= 21:
                await _turn(graph, short, None)
            if turn % step == 0 or turn == turns:
                size = await _thread_bytes(pool, thread)
                out.append(
                    {
                        "from": previous_turn + 1,
                        "to": turn,
                        "bytes_per_turn": (size - previous_bytes) / (turn - previous_turn),
                        "total_bytes": size,
                        "ms_per_turn": 1000
                        * (time.perf_counter() - started)
                        / (turn - previous_turn),
                    }
                )
                previous_bytes, previous_turn = size, turn
                started = time.perf_counter()
        paired: dict[str, list[float]] = {thread: [], short: []}
        for _ in range(20):
            for one in (thread, short):
                t0 = time.perf_counter()
                await _turn(graph, one, None)
                paired[one].append(1000 * (time.perf_counter() - t0))
        first = statistics.median(times[1:21]) if len(times) > 21 else float("nan")
        last = statistics.median(times[-20:]) if len(times) > 40 else float("nan")
        early, late = statistics.median(paired[short]), statistics.median(paired[thread])
        return out, {
            "first_ms": first,
            "last_ms": last,
            "ratio": last / first,
            "short_ms": early,
            "long_ms": late,
            "paired_ratio": late / early,
        }
    finally:
        await pool.close()
