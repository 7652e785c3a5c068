"""Peak memory of one scenario, measured in a fresh Python process.

``python -m tests.memprobe fetch <url> <max_bytes>`` fetches ``url`` with the ``web_fetch``
tool; ``python -m tests.memprobe api <url> <limit>`` reads it as the API-backed tools do;
``python -m tests.memprobe parse <path> <filename>`` identifies and parses a file as an ingest
does (the parse pool's function, with the default limits). Each first warms up (imports, one
small call of the same kind), then runs the scenario and prints one JSON line::

    {"rss_before_mb": ..., "peak_mb": ..., "growth_mb": ..., "outcome": "..."}

``growth_mb`` is the process's peak resident size (``VmHWM``, a high-water mark kept by the
kernel, so no sampling can miss a spike; reset through ``/proc/self/clear_refs`` just before
the scenario) minus its resident size at that moment: what the scenario added at its worst.
(``ru_maxrss`` cannot be used: a child inherits its parent's high-water mark across exec.)
"""

from __future__ import annotations

import asyncio
import io
import json
import resource
import sys
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident size to the current one


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _settings(**extra: Any) -> Any:
    from loom.settings import Settings

    return Settings(fetch_allow_private=True, tool_timeout_seconds=30.0, **extra)


async def _fetch(url: str, max_bytes: int) -> str:
    from loom.tools.safe_http import SafeFetcher
    from loom.tools.web_fetch import WebFetchConfig, build_web_fetch_tool

    settings = _settings(fetch_max_bytes=max_bytes)
    tool = build_web_fetch_tool(SafeFetcher(settings), WebFetchConfig(), 30.0)
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"url": url}}
    )
    return f"{message.status}: {str(message.content)[:300]}"


async def _api(url: str, limit: int) -> str:
    from langchain_core.tools import ToolException

    from loom.tools._http import api_client, api_request

    async with api_client(_settings()) as client:
        try:
            answer = await api_request(client, "GET", url, service="fake", limit=limit)
        except ToolException as exc:
            return f"error: {exc}"
    return f"success: {len(answer.content)} bytes"


def _parse(path: str, filename: str) -> str:
    from loom.retrieval.ingest import CheckedFile, chunk_file
    from loom.retrieval.loaders import FileRejected, Upload, identify

    data = Path(path).read_bytes()
    upload = Upload(filename, None, io.BytesIO(data), len(data))
    try:
        kind = identify(upload)
        chunks = chunk_file(CheckedFile(upload, kind), _settings())
    except FileRejected as exc:
        return f"rejected {exc.status}: {exc.reason}"
    return f"parsed: {len(chunks)} chunks"


def _warm_up(kind: str, args: list[str]) -> None:
    if kind == "fetch":
        base = args[0].split("/bomb", 1)[0]
        asyncio.run(_fetch(f"{base}/plain.txt", 4096))
    elif kind == "api":
        base = args[0].split("/bomb", 1)[0]
        asyncio.run(_api(f"{base}/plain.txt", 4096))
    else:
        from tests.retrieval.helpers import make_docx, make_pdf

        for name, data in (("w.pdf", make_pdf(["warm up"])), ("w.docx", make_docx(["warm"]))):
            tmp = Path(args[0]).with_name(name)
            tmp.write_bytes(data)
            _parse(str(tmp), name)


def main(argv: list[str]) -> int:
    kind, *args = argv
    _warm_up(kind, args)
    _reset_peak()
    before = _rss()
    if kind == "fetch":
        outcome = asyncio.run(_fetch(args[0], int(args[1])))
    elif kind == "api":
        outcome = asyncio.run(_api(args[0], int(args[1])))
    else:
        outcome = _parse(args[0], args[1])
    peak = _peak()
    print(
        json.dumps(
            {
                "rss_before_mb": round(before / MB, 1),
                "peak_mb": round(peak / MB, 1),
                "growth_mb": round((peak - before) / MB, 1),
                "outcome": outcome,
            }
        )
    )
    return 0


def probe(*argv: str) -> dict[str, Any]:
    """Run a scenario in a fresh process; its JSON report."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "tests.memprobe", *argv],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"memprobe failed: {done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
