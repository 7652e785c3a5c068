"""Postgres going away and coming back: nothing stays stuck, nothing answers 5xx afterwards.

Loom reaches Postgres through a TCP proxy the test controls (:mod:`tests.faultproxy`). An
outage cuts every open connection (a reset, as after a server restart) and refuses new ones
for a few seconds. Requests made during an outage may fail; once the database is back, every
request must succeed: no pooled connection left over from before may reach a request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from tests.conftest import LoomServer, make_settings, start_loom
from tests.fakes.openai_server import FakeOpenAI
from tests.faultproxy import FaultProxy
from tests.runs.helpers import CHATBOT, TERMINAL, messages, new_thread, run_body
from tests.runs.sse_client import OpenStream, check_shape, stream_run

OUTAGE = 3.0
TEXT = " ".join(f"word{i}" for i in range(60)) + "."


@pytest.fixture(scope="module")
def proxy(pg_admin_url: str) -> Iterator[FaultProxy]:
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    host = str(info.get("host") or "localhost")
    port = int(info.get("port") or 5432)
    if host.startswith("/"):  # the embedded server's Unix socket
        target = FaultProxy(f"{host}/.s.PGSQL.{port}")
    elif host in ("localhost", "127.0.0.1", "::1"):
        target = FaultProxy(host, port)
    else:
        pytest.skip("the fault proxy forwards to a loopback Postgres only")
    with target as fault:
        yield fault


@pytest.fixture(scope="module")
def loom(
    database_url: str, fake_llm: FakeOpenAI, proxy: FaultProxy, request: pytest.FixtureRequest
) -> Iterator[LoomServer]:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info.update(host="127.0.0.1", port=str(proxy.port))
    settings = make_settings(
        psycopg.conninfo.make_conninfo(**info),
        fake_llm,
        lease_seconds=3.0,
        db_pool_max=10,
    )
    with start_loom(settings, request) as server:
        yield server


class Watch:
    """Requests made after the outage ended: none may answer 5xx."""

    def __init__(self, back_at: float) -> None:
        self.back_at = back_at
        self.after: list[tuple[str, int]] = []

    def get(self, client: requests.Session, path: str, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        try:
            r = client.get(path, timeout=60, **kwargs)
        except requests.ConnectionError:
            if started >= self.back_at:
                self.after.append((path, 599))  # the server dropped the request
            raise
        if started >= self.back_at:
            self.after.append((path, r.status_code))
        return r

    def check(self) -> None:
        assert self.after, "no request was made after the outage"
        failed = [(path, status) for path, status in self.after if status >= 500]
        assert not failed, failed


def _warm_pool(client: requests.Session, n: int = 8) -> None:
    """Open several pooled connections (concurrent requests), so that many are idle in the
    pool when the outage cuts them."""
    with ThreadPoolExecutor(n) as pool:
        codes = list(pool.map(lambda _: client.get("/threads").status_code, range(3 * n)))
    assert set(codes) == {200}


def test_no_error_after_an_idle_outage(loom: LoomServer, proxy: FaultProxy) -> None:
    client = loom.client("alice")
    new_thread(client)
    _warm_pool(client)
    back_at = proxy.outage(OUTAGE)
    time.sleep(max(0.0, back_at - time.monotonic()) + 0.2)
    watch = Watch(back_at)
    for _ in range(16):
        watch.get(client, "/threads")
    for path in ("/assistants", "/health", "/me"):
        watch.get(client, path)
    r = client.post("/threads", json={"name": "after", "assistant_id": new_thread(client)[0]})
    assert r.status_code == 200, r.text
    watch.check()


def test_a_run_cut_mid_stream_ends_and_the_thread_goes_on(
    loom: LoomServer, fake_llm: FakeOpenAI, proxy: FaultProxy
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client, CHATBOT)
    fake_llm.reply(text="Hello there.")
    check_shape(stream_run(client, run_body(thread_id, "hi")))
    before = messages(client, thread_id)
    _warm_pool(client)

    # A slow reply (and a second one, should the run be executed again after the outage).
    fake_llm.reply(text=TEXT, token_delay=0.05)
    fake_llm.reply(text=TEXT, token_delay=0.01)
    stream = OpenStream(client, run_body(thread_id, "go"))
    stream.first_token()
    run_id = stream.run_id
    events: list[Any] = []
    reader = threading.Thread(target=lambda: events.extend(stream.rest()), daemon=True)
    reader.start()
    time.sleep(0.3)  # a few tokens in
    back_at = proxy.outage(OUTAGE)
    time.sleep(max(0.0, back_at - time.monotonic()))

    watch = Watch(back_at)
    deadline = time.monotonic() + 60
    while True:
        r = watch.get(client, f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        run = r.json()
        if run["status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, f"the run is stuck: {run}"
        time.sleep(0.1)
    print(f"\nafter the outage the run ended {run['status']} ({run['error']})")
    assert run["status"] in ("success", "error"), run
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream did not end"
    assert [e.event for e in events][-1] == "end"

    # The thread's state is readable and holds the input (and the reply, or what was kept).
    r = watch.get(client, f"/threads/{thread_id}/state")
    assert r.status_code == 200, r.text
    after = r.json()["values"]
    assert after[: len(before)] == before
    added = [(m["type"], m["content"]) for m in after[len(before) :]]
    assert added[0] == ("human", "go")
    if run["status"] == "success":
        assert added == [("human", "go"), ("ai", TEXT)]
    else:
        assert len(added) <= 2
        if len(added) == 2:
            assert added[1][0] == "ai" and TEXT.startswith(added[1][1])
    r = watch.get(client, f"/threads/{thread_id}/history")
    assert r.status_code == 200 and r.json()

    # The thread takes a new run at once.
    fake_llm.reset()
    fake_llm.reply(text="Still here.")
    again = stream_run(client, run_body(thread_id, "still there?"))
    check_shape(again)
    assert "error" not in again.names
    assert messages(client, thread_id)[-2:] == again.data[-1][-2:]
    assert [(m["type"], m["content"]) for m in again.data[-1][-2:]] == [
        ("human", "still there?"),
        ("ai", "Still here."),
    ]
    watch.check()
