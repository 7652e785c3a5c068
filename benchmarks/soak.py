"""A bounded soak: ``streams`` clients streaming runs back to back against one Loom form for
``seconds``, every reply's text checked token for token, the server's resident memory sampled
every ``every`` seconds and printed with its slope.

Each client streams its runs on a thread of its own, starting a new thread every
``turns_per_thread`` runs, so that the soak measures the server, not one thread's growth. A
reply whose text is not exactly the fake model's (a token lost, doubled or out of order) is
counted as lost; so is a run that fails. Figures, not assertions.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.forms import _descendants
from benchmarks.load import LoomClient

MB = 1024 * 1024


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes and all their live descendants."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in {d for p in pids for d in _descendants(p)}:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError):
            continue
    return total


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (y per x); 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


@dataclass
class SoakResult:
    seconds: float
    streams: int
    runs: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s, RSS MB)

    @property
    def slope_mb_per_min(self) -> float:
        return 60 * slope(self.samples)

    @property
    def settled_slope_mb_per_min(self) -> float:
        """The slope after the first minute (caches and pools filling up)."""
        return 60 * slope([p for p in self.samples if p[0] >= 60])

    def figures(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "streams": self.streams,
            "runs": self.runs,
            "lost": self.lost,
            "rss_mb": self.samples,
            "rss_slope_mb_per_min": round(self.slope_mb_per_min, 3),
            "rss_slope_after_1_min_mb_per_min": round(self.settled_slope_mb_per_min, 3),
            "first_errors": self.errors[:5],
        }


async def soak(
    url: str,
    pids: list[int],
    expect: str,
    *,
    streams: int = 50,
    seconds: float = 300.0,
    every: float = 10.0,
    turns_per_thread: int = 20,
    log: Any = print,
) -> SoakResult:
    result = SoakResult(seconds=seconds, streams=streams)
    client = LoomClient(url)
    started = time.monotonic()
    stop_at = started + seconds
    async with aiohttp.ClientSession(
        cookies=client.cookies,
        connector=aiohttp.TCPConnector(limit=streams + 8),
        timeout=aiohttp.ClientTimeout(total=120),
    ) as http:
        await client.threads(http, 1)  # the assistant

        async def stream() -> None:
            thread, turns = "", turns_per_thread
            while time.monotonic() < stop_at:
                try:
                    if turns >= turns_per_thread:
                        [thread] = await client.threads(http, 1)
                        turns = 0
                    await client.run(http, thread, expect)
                    turns += 1
                    result.runs += 1
                except Exception as exc:
                    result.lost += 1
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    await asyncio.sleep(0.5)

        async def sample() -> None:
            while True:
                at = time.monotonic() - started
                mb = rss_bytes(pids) / MB
                result.samples.append((round(at, 1), round(mb, 1)))
                log(f"  {at:5.0f} s  RSS {mb:7.1f} MB  {result.runs} runs, {result.lost} lost")
                await asyncio.sleep(every)

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.gather(*(stream() for _ in range(streams)))
        finally:
            sampler.cancel()
        result.samples.append(
            (round(time.monotonic() - started, 1), round(rss_bytes(pids) / MB, 1))
        )
    return result


def report(result: SoakResult) -> str:
    first, last = result.samples[0][1], result.samples[-1][1]
    peak = max(mb for _, mb in result.samples)
    return (
        f"  soak: {result.streams} streams for {result.seconds:g} s: {result.runs} runs,"
        f" {result.lost} lost or failed; server RSS {first:.1f} -> {last:.1f} MB"
        f" (peak {peak:.1f}), slope {result.slope_mb_per_min:+.2f} MB/min"
        f" ({result.settled_slope_mb_per_min:+.2f} MB/min after the first minute)"
        f" over {len(result.samples)} samples"
    )
