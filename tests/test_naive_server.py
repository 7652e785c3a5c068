"""The bench's naive floor server (``benchmarks/naive_server.py``) streams the model's reply and
keeps the thread's history in Postgres."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.openai_server import FakeOpenAI, tokenize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def naive_url(database_url: str, fake_llm: FakeOpenAI) -> Iterator[str]:
    argv = [sys.executable, "-m", "benchmarks.naive_server", "--port", "0"]
    argv += ["--database-url", database_url, "--llm-url", fake_llm.base_url]
    # (the with closes the pipe)
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 60
            line = ""
            while not line and proc.poll() is None and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                if ready:
                    line = proc.stdout.readline()
            assert line.startswith("ready http://"), f"naive server did not start: {line!r}"
            yield line.split()[1]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _stream(url: str, thread: str, content: str) -> tuple[list[str], list[str]]:
    """(event names, token texts) of one streamed run."""
    body = {"input": {"messages": [{"type": "human", "content": content}]}}
    events: list[str] = []
    tokens: list[str] = []
    with requests.post(
        f"{url}/threads/{thread}/runs/stream", json=body, stream=True, timeout=30
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                events.append(line[7:])
            elif line.startswith("data: ") and events[-1] == "messages":
                tokens.append(json.loads(line[6:])["content"])
    return events, tokens


def test_streams_the_reply_token_by_token_and_keeps_the_thread(
    naive_url: str, fake_llm: FakeOpenAI
) -> None:
    text = "Naive floors stream, one token per event."
    first = fake_llm.reply(text=text)
    thread = str(uuid.uuid4())

    events, tokens = _stream(naive_url, thread, "hello")

    assert "".join(tokens) == text
    assert tokens == tokenize(text)
    assert events == ["messages"] * len(tokens) + ["end"]
    assert [m["content"] for m in first.requests[0]["messages"]] == ["hello"]

    second = fake_llm.reply(text="Again.")
    _, tokens = _stream(naive_url, thread, "once more")
    assert "".join(tokens) == "Again."
    history = [(m["role"], m["content"]) for m in second.requests[0]["messages"]]
    assert history == [("user", "hello"), ("assistant", text), ("user", "once more")]
