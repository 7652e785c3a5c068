"""Redis going away and coming back mid-run: the run still ends (its outcome is in Postgres),
the thread takes the next run at once, and nothing answers 5xx once Redis is back.

Loom reaches Redis through a TCP proxy the test controls (:mod:`tests.faultproxy`); an outage
cuts every connection and refuses new ones for a few seconds. One server process with the
Redis broker (its streams and wake-ups go through Redis), and the scaled form: API and worker
processes, all behind the same proxy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.cluster import LoomCluster
from tests.conftest import TOPOLOGY, LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.faultproxy import FaultProxy
from tests.runs.helpers import CHATBOT, TERMINAL, messages, new_thread, run_body
from tests.runs.sse_client import OpenStream, check_shape, read_stream, stream_run

pytestmark = pytest.mark.redis

OUTAGE = 3.0
TEXT = " ".join(f"word{i}" for i in range(60)) + "."


@pytest.fixture(scope="module")
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(redis_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as fault:
        yield fault


@pytest.fixture(scope="module")
def loom(
    database_url: str,
    fake_llm: FakeOpenAI,
    proxy: FaultProxy,
    redis_url: str,
    redis_prefix: str,
) -> Iterator[Any]:
    parts = urlsplit(redis_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
    settings = make_settings(
        database_url,
        fake_llm,
        redis_url=via_proxy,
        redis_prefix=redis_prefix,
        lease_seconds=3.0,
    )
    if TOPOLOGY == "cluster":
        with LoomCluster(settings) as cluster:
            yield cluster
    else:
        with LoomServer(settings) as server:
            yield server


def test_a_run_survives_a_redis_outage(
    loom: LoomServer, fake_llm: FakeOpenAI, proxy: FaultProxy
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client, CHATBOT)
    fake_llm.reply(text="Hello there.")
    check_shape(stream_run(client, run_body(thread_id, "hi")))
    before = messages(client, thread_id)

    fake_llm.reply(text=TEXT, token_delay=0.05)
    fake_llm.reply(text=TEXT, token_delay=0.01)
    stream = OpenStream(client, run_body(thread_id, "go"))
    stream.first_token()
    run_id = stream.run_id
    events: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            events.extend(stream.rest())
        except BaseException as exc:  # a stream cut by the outage is allowed
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    back_at = proxy.outage(OUTAGE)
    time.sleep(max(0.0, back_at - time.monotonic()))

    after: list[tuple[str, int]] = []
    deadline = time.monotonic() + 60
    while True:
        r = client.get(f"/runs/{run_id}", timeout=60)
        after.append((r.request.path_url, r.status_code))
        assert r.status_code == 200, r.text
        run = r.json()
        if run["status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, f"the run is stuck: {run}"
        time.sleep(0.1)
    print(f"\nafter the Redis outage the run ended {run['status']} ({run['error']})")
    assert run["status"] in ("success", "error"), run
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream did not end"

    values = messages(client, thread_id)
    assert values[: len(before)] == before
    added = [(m["type"], m["content"]) for m in values[len(before) :]]
    assert added[0] == ("human", "go")
    if run["status"] == "success":
        assert added == [("human", "go"), ("ai", TEXT)]

    # A client that lost its stream can follow the run again, to its end.
    replay = read_stream(client.get(f"/runs/{run_id}/stream", timeout=30, stream=True))
    assert replay.names[-1] == "end"

    fake_llm.reset()
    fake_llm.reply(text="Still here.")
    again = stream_run(client, run_body(thread_id, "still there?"))
    check_shape(again)
    assert "error" not in again.names
    assert [(m["type"], m["content"]) for m in again.data[-1][-2:]] == [
        ("human", "still there?"),
        ("ai", "Still here."),
    ]
    for path in ("/threads", f"/threads/{thread_id}/state", "/assistants"):
        r = client.get(path, timeout=30)
        after.append((path, r.status_code))
    assert all(status < 500 for _, status in after), after
