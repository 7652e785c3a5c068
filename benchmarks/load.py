"""The load generator: streamed runs against a form, every reply's text checked.

Two clients speak the two wire protocols: :class:`LoomClient` (``POST /runs/stream`` after
creating an assistant and threads) and :class:`NaiveClient` (the naive floor's
``POST /threads/{id}/runs/stream``). Both return, per run, the latency, the time to the first
token and the bytes received, and raise when the reply's text is not exactly ``expect``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from benchmarks.forms import cpu_seconds

HUMAN = {"messages": [{"type": "human", "content": "hello"}]}
WARM_UP_TIMEOUT = 60.0


class Client(Protocol):
    cookies: dict[str, str]

    async def threads(self, http: aiohttp.ClientSession, n: int) -> list[str]: ...

    async def run(
        self, http: aiohttp.ClientSession, thread: str, expect: str
    ) -> tuple[float, float, int]: ...


class LoomClient:
    def __init__(self, url: str, fmt: str = "compact") -> None:
        self.url, self.fmt = url, fmt
        self.assistant = ""
        self.cookies = {"opengpts_user_id": f"bench-{uuid.uuid4().hex[:8]}"}

    async def threads(self, http: aiohttp.ClientSession, n: int) -> list[str]:
        if not self.assistant:
            body = {"name": "bench", "config": {"configurable": {"type": "chatbot"}}}
            async with http.post(f"{self.url}/assistants", json=body) as r:
                r.raise_for_status()
                self.assistant = (await r.json())["assistant_id"]
        out = []
        for i in range(n):
            body = {"name": f"t{i}", "assistant_id": self.assistant}
            async with http.post(f"{self.url}/threads", json=body) as r:
                r.raise_for_status()
                out.append((await r.json())["thread_id"])
        return out

    async def run(
        self, http: aiohttp.ClientSession, thread: str, expect: str
    ) -> tuple[float, float, int]:
        started = time.perf_counter()
        first = 0.0
        size = 0
        text = ""
        event = ""
        body = {"assistant_id": self.assistant, "thread_id": thread, "input": HUMAN}
        async with http.post(f"{self.url}/runs/stream?format={self.fmt}", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
            async for raw in resp.content:
                size += len(raw)
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "data":
                    data = json.loads(line[6:])
                    if self.fmt == "compact":
                        for patch in data:
                            if patch.get("type") == "ai":
                                text = patch["content"]
                            elif "delta" in patch:
                                text += patch["delta"]
                    elif data[-1].get("type") == "ai":
                        text = data[-1]["content"]
                    if text and not first:
                        first = time.perf_counter() - started
                elif line.startswith("data: ") and event == "error":
                    raise RuntimeError(f"error event: {line}")
        if text != expect:
            raise RuntimeError(f"reply mismatch: {text[:60]!r}")
        return time.perf_counter() - started, first, size


class NaiveClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.cookies: dict[str, str] = {}

    async def threads(self, http: aiohttp.ClientSession, n: int) -> list[str]:
        return [str(uuid.uuid4()) for _ in range(n)]

    async def run(
        self, http: aiohttp.ClientSession, thread: str, expect: str
    ) -> tuple[float, float, int]:
        started = time.perf_counter()
        first = 0.0
        size = 0
        parts: list[str] = []
        event = ""
        url = f"{self.url}/threads/{thread}/runs/stream"
        async with http.post(url, json={"input": HUMAN}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
            async for raw in resp.content:
                size += len(raw)
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "messages":
                    parts.append(json.loads(line[6:])["content"])
                    if not first:
                        first = time.perf_counter() - started
                elif line.startswith("data: ") and event == "error":
                    raise RuntimeError(f"error event: {line}")
        text = "".join(parts)
        if text != expect:
            raise RuntimeError(f"reply mismatch: {text[:60]!r}")
        return time.perf_counter() - started, first, size


def make_client(kind: str, url: str, loom_format: str) -> Client:
    return LoomClient(url, loom_format) if kind == "loom" else NaiveClient(url)


def _session(client: Client) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256),
        timeout=aiohttp.ClientTimeout(total=120),
        cookies=client.cookies,
    )


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    jiffies = [int(x) for x in line.split()[1:8]]  # user nice system idle iowait irq softirq
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class LoadResult:
    concurrency: int
    runs: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    cpu: float = 0.0
    client_cpu: float = 0.0
    watched_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # CPU seconds the whole machine spent, all processes

    def figures(self) -> dict[str, Any]:
        def per_run(seconds: float) -> float:
            return 1000 * seconds / self.runs if self.runs else float("nan")

        ours = self.cpu + self.client_cpu + sum(self.watched_cpu.values())
        return {
            "c": self.concurrency,
            "runs": self.runs,
            "failures": self.failures,
            "runs_per_s": self.runs / self.seconds if self.seconds else 0.0,
            "p50_ms": 1000 * pct(self.latencies, 0.5),
            "p99_ms": 1000 * pct(self.latencies, 0.99),
            "ttft_p50_ms": 1000 * pct(self.ttfts, 0.5),
            "bytes_per_run": statistics.mean(self.bytes) if self.bytes else float("nan"),
            "cpu_ms_per_run": per_run(self.cpu),
            "client_cpu_ms_per_run": per_run(self.client_cpu),
            **{f"{k}_cpu_ms_per_run": per_run(v) for k, v in self.watched_cpu.items()},
            # cores busy with processes that are not part of this measurement (noise)
            "other_cores": max(0.0, self.machine_busy - ours) / self.seconds if self.seconds else 0,
        }


async def load(
    client: Client,
    pids: Sequence[int],
    concurrency: int,
    seconds: float,
    expect: str,
    watch: dict[str, list[int]] | None = None,
) -> LoadResult:
    """``concurrency`` threads, each running turn after turn for ``seconds``.

    One warm-up turn per thread first (graph compile, connections); it must succeed within
    ``WARM_UP_TIMEOUT`` or the form is reported as not working. CPU is measured for the
    server's ``pids``, this process (the load generator), each group of ``watch`` (e.g.
    Postgres, the fake model) and the whole machine.
    """
    watch = watch or {}
    result = LoadResult(concurrency)
    async with _session(client) as http:
        threads = await client.threads(http, concurrency)
        warm = asyncio.gather(*(client.run(http, t, expect) for t in threads))
        await asyncio.wait_for(warm, WARM_UP_TIMEOUT)

        stop_at = time.perf_counter() + seconds
        cpu0, client0, busy0 = cpu_seconds(pids), time.process_time(), _machine_busy()
        watched0 = {k: cpu_seconds(v) for k, v in watch.items()}
        t0 = time.perf_counter()

        async def worker(thread: str) -> None:
            failed_in_a_row = 0
            while time.perf_counter() < stop_at and failed_in_a_row < 5:
                try:
                    lat, ttft, size = await client.run(http, thread, expect)
                except Exception as exc:  # counted and reported
                    result.failures += 1
                    failed_in_a_row += 1
                    print(f"    run failed: {exc}", file=sys.stderr)
                    continue
                failed_in_a_row = 0
                result.runs += 1
                result.latencies.append(lat)
                result.ttfts.append(ttft)
                result.bytes.append(size)

        await asyncio.gather(*(worker(t) for t in threads))
        result.seconds = time.perf_counter() - t0
        result.cpu = cpu_seconds(pids) - cpu0
        result.client_cpu = time.process_time() - client0
        result.watched_cpu = {k: cpu_seconds(v) - watched0[k] for k, v in watch.items()}
        result.machine_busy = _machine_busy() - busy0
    return result


async def first_token_c1(
    client: Client, fresh_runs: int, grown_turns: int, measured_turns: int, expect: str
) -> dict[str, float]:
    """Time to first token at concurrency 1: on fresh threads (one run each), and on one thread
    after ``grown_turns`` turns (the p50 of the next ``measured_turns``)."""
    async with _session(client) as http:
        fresh = []
        for thread in await client.threads(http, fresh_runs + 1):
            fresh.append((await client.run(http, thread, expect))[1])
        fresh = fresh[1:]  # the first one pays for connections
        (thread,) = await client.threads(http, 1)
        for _ in range(grown_turns):
            await client.run(http, thread, expect)
        grown = [(await client.run(http, thread, expect))[1] for _ in range(measured_turns)]
    return {
        "fresh_ttft_p50_ms": 1000 * pct(fresh, 0.5),
        "grown_ttft_p50_ms": 1000 * pct(grown, 0.5),
        "grown_turns": grown_turns,
    }
