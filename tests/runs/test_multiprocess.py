"""The scaled form with real processes: two ``loom serve --no-worker`` API processes, two
``loom worker`` processes, one Postgres database and a Redis server of the module's own.

Runs are started through one API process and followed or cancelled through the other;
workers are killed (``kill -9``) and stopped (SIGTERM) mid-run; a lease is taken away from a
worker that still executes its run; Redis pauses and restarts mid-run. Every run must end
exactly once, with the thread holding the user's message once and one complete reply.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

from tests.cluster import LoomCluster, free_port
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import messages, new_thread, run_body, wait_run
from tests.runs.sse_client import OpenStream, check_ids

LEASE = 2.0  # seconds: heartbeats every 0.67 s, sweeps every second
SLOW = " ".join(f"w{i}" for i in range(50))
DELAY = 0.06  # per token: three seconds in all


class OwnRedis:
    """A redis-server process of this module's own, on a free port (restartable)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(
    database_url: str, fake_llm: FakeOpenAI, own_redis: OwnRedis, tmp_path_factory: Any
) -> Iterator[LoomCluster]:
    settings = make_settings(
        database_url,
        fake_llm,
        redis_url=own_redis.url,
        lease_seconds=LEASE,
        run_max_attempts=3,
        drain_seconds=0.5,
        worker_poll_seconds=0.5,
        stream_heartbeat_seconds=1.0,
    )
    logs = tmp_path_factory.mktemp("cluster-logs")
    with LoomCluster(settings, apis=2, workers=2, logs=logs) as loom:
        yield loom


@pytest.fixture(autouse=True)
def _two_workers(cluster: LoomCluster) -> None:
    """Every test starts with two live workers (a test may have killed one)."""
    while len(cluster.live_workers()) < 2:
        cluster.start_worker()


def _row(database_url: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute(
            "SELECT status, attempt, lease_owner, claim_token FROM run WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    return row


def _holder(cluster: LoomCluster, database_url: str, run_id: str) -> subprocess.Popen[bytes]:
    """The worker process that holds the run (waits until one claimed it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = _row(database_url, run_id)
        if row["status"] == "running" and row["lease_owner"]:
            pid = int(row["lease_owner"].split(":")[1])
            for proc in cluster.worker_procs:
                if proc.pid == pid:
                    return proc
        time.sleep(0.02)
    raise AssertionError(f"no worker holds run {run_id}")


def _text(events: list[Any]) -> str:
    """The AI text of the last data event of an opengpts-format stream."""
    last = [e for e in events if e.event == "data"][-1].data
    return str(last[-1]["content"])


def _thread(client: requests.Session, thread_id: str) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in messages(client, thread_id)]


def test_stream_through_one_api_and_follow_through_the_other(
    cluster: LoomCluster, fake_llm: FakeOpenAI
) -> None:
    a = cluster.client("alice", api=0)
    b = cluster.client("alice", api=1)
    _, thread_id = new_thread(a)
    fake_llm.reply(text=SLOW, token_delay=0.02)
    stream = OpenStream(a, run_body(thread_id, "across"))
    for _ in range(8):
        stream.next()
    stream.close()
    follow = OpenStream(
        b, path=f"/runs/{stream.run_id}/stream", headers={"Last-Event-ID": stream.last_id}
    )
    rest = follow.rest()
    check_ids(rest, after=int(stream.last_id))
    assert rest[-1].event == "end" and "error" not in [e.event for e in rest]
    assert _text(rest) == SLOW
    # and a fresh follower on A replays the whole run from its start
    again = OpenStream(a, path=f"/runs/{stream.run_id}/stream").rest()
    assert again[0].event == "metadata" and _text(again) == SLOW
    assert _thread(b, thread_id) == [("human", "across"), ("ai", SLOW)]


def test_cancel_through_the_other_api(cluster: LoomCluster, fake_llm: FakeOpenAI) -> None:
    a = cluster.client("alice", api=0)
    b = cluster.client("alice", api=1)
    _, thread_id = new_thread(a)
    fake_llm.reply(text=SLOW, token_delay=DELAY)
    stream = OpenStream(a, run_body(thread_id, "stop me"))
    stream.first_token()
    r = b.post(f"/runs/{stream.run_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    events = stream.rest()
    assert [e.event for e in events[-2:]] == ["error", "end"]
    assert events[-2].data == {"status_code": 499, "message": "The run was cancelled"}
    assert _thread(a, thread_id) == [("human", "stop me"), ("ai", _text(events))]


def test_background_runs_spread_over_both_workers(
    cluster: LoomCluster, fake_llm: FakeOpenAI, database_url: str
) -> None:
    client = cluster.client("alice")
    fake_llm.set_default(text="In parallel we go.", token_delay=0.2)
    started = []
    for _ in range(6):
        _, thread_id = new_thread(client)
        r = client.post("/runs", json=run_body(thread_id, "go"))
        started.append(r.json()["run_id"])
    owners: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while len(owners) < len(started) and time.monotonic() < deadline:
        for run_id in started:
            row = _row(database_url, run_id)
            if run_id not in owners and row["lease_owner"]:
                owners[run_id] = row["lease_owner"]
        time.sleep(0.02)
    for run_id in started:
        assert wait_run(client, run_id)["status"] == "success"
    assert len(owners) == len(started)
    assert len(set(owners.values())) == 2, owners


def test_kill_9_a_worker_mid_run(
    cluster: LoomCluster, fake_llm: FakeOpenAI, database_url: str
) -> None:
    """The run continues on the other worker from its last checkpoint once the lease lapses;
    the client following the stream sees it finish with one complete reply."""
    a = cluster.client("alice", api=0)
    _, thread_id = new_thread(a)
    fake_llm.when("crash", text=SLOW, token_delay=DELAY)  # every attempt gets the same reply
    stream = OpenStream(a, run_body(thread_id, "crash test"))
    for _ in range(6):
        stream.next()
    holder = _holder(cluster, database_url, stream.run_id)
    os.kill(holder.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    holder.wait(timeout=10)

    events = stream.rest()
    recovered = time.monotonic() - killed_at
    print(f"\nkill -9 to run completed elsewhere: {recovered:.2f} s (lease {LEASE:.0f} s)")
    assert events[-1].event == "end" and "error" not in [e.event for e in events]
    check_ids(events)
    final = [e for e in events if e.event == "data"][-1].data
    # the half reply of the first attempt was removed from the stream; one complete reply
    assert [(m["type"], m["content"]) for m in final] == [("human", "crash test"), ("ai", SLOW)]
    row = _row(database_url, stream.run_id)
    assert row["status"] == "success" and row["attempt"] == 2
    assert _thread(a, thread_id) == [("human", "crash test"), ("ai", SLOW)]


def test_sigterm_a_worker_mid_run_hands_the_run_back(
    cluster: LoomCluster, fake_llm: FakeOpenAI, database_url: str
) -> None:
    a = cluster.client("alice", api=0)
    _, thread_id = new_thread(a)
    fake_llm.when("drain", text=SLOW, token_delay=DELAY)
    stream = OpenStream(a, run_body(thread_id, "drain test"))
    for _ in range(6):
        stream.next()
    holder = _holder(cluster, database_url, stream.run_id)
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=20) == 0
    events = stream.rest()
    assert events[-1].event == "end" and "error" not in [e.event for e in events]
    row = _row(database_url, stream.run_id)
    # handed back, then finished by the other worker; a hand-back is not a failed attempt
    assert row["status"] == "success" and row["attempt"] == 1
    assert _text(events) == SLOW
    assert _thread(a, thread_id) == [("human", "drain test"), ("ai", SLOW)]
    assert "is stopping: 1 run(s) in flight" in cluster.log_text()


def test_a_worker_that_lost_its_lease_never_writes_the_outcome(
    cluster: LoomCluster, fake_llm: FakeOpenAI, database_url: str, own_redis: OwnRedis
) -> None:
    """Take the lease away from a worker that still executes the run (what the sweeper does
    when heartbeats stall): another claim wins, the first worker stops without writing."""
    a = cluster.client("alice", api=0)
    _, thread_id = new_thread(a)
    fake_llm.when("race", text=SLOW, token_delay=DELAY)
    stream = OpenStream(a, run_body(thread_id, "race test"))
    for _ in range(6):
        stream.next()
    first = _row(database_url, stream.run_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE run SET status = 'pending', lease_owner = NULL, claim_token = NULL,"
            " lease_until = NULL WHERE run_id = %s AND claim_token = %s",
            (stream.run_id, first["claim_token"]),
        )
    redis.Redis.from_url(own_redis.url).lpush(cluster.settings.redis_prefix + "wake", b"1")
    events = stream.rest()
    assert events[-1].event == "end" and "error" not in [e.event for e in events]
    row = _row(database_url, stream.run_id)
    assert row["status"] == "success" and row["attempt"] == 2
    assert row["claim_token"] is None
    assert f"lost the lease of run {stream.run_id}" in cluster.log_text()
    assert _thread(a, thread_id) == [("human", "race test"), ("ai", SLOW)]


def test_redis_pause_mid_run(
    cluster: LoomCluster, fake_llm: FakeOpenAI, own_redis: OwnRedis
) -> None:
    a = cluster.client("alice", api=0)
    b = cluster.client("alice", api=1)
    _, thread_id = new_thread(a)
    fake_llm.reply(text=SLOW, token_delay=0.04)
    stream = OpenStream(a, run_body(thread_id, "pause test"))
    stream.first_token()
    redis.Redis.from_url(own_redis.url).execute_command("CLIENT", "PAUSE", "3000", "ALL")
    events = stream.rest()
    assert events[-1].event == "end" and "error" not in [e.event for e in events]
    assert _text(events) == SLOW
    assert wait_run(b, stream.run_id)["status"] == "success"
    assert _thread(b, thread_id) == [("human", "pause test"), ("ai", SLOW)]


def test_redis_restart_mid_run(
    cluster: LoomCluster, fake_llm: FakeOpenAI, own_redis: OwnRedis
) -> None:
    """Redis dies and comes back empty: the run still finishes, its outcome is in Postgres,
    and the client's stream reconnects and ends."""
    a = cluster.client("alice", api=0)
    b = cluster.client("alice", api=1)
    _, thread_id = new_thread(a)
    fake_llm.reply(text=SLOW, token_delay=0.04)
    stream = OpenStream(a, run_body(thread_id, "restart test"))
    stream.first_token()
    own_redis.kill()
    time.sleep(1.0)
    own_redis.start()
    events = stream.rest()
    assert events[-1].event == "end"
    assert wait_run(b, stream.run_id)["status"] == "success"
    assert _thread(b, thread_id) == [("human", "restart test"), ("ai", SLOW)]
    # the next run goes through Redis as usual
    fake_llm.reply(text="After the restart.")
    after = OpenStream(b, run_body(thread_id, "again")).rest()
    assert after[-1].event == "end" and _text(after) == "After the restart."


def test_unknown_user_cannot_follow(cluster: LoomCluster) -> None:
    r = cluster.client("mallory").get(f"/runs/{uuid.uuid4()}/stream")
    assert r.status_code == 404


def test_no_process_left_behind(cluster: LoomCluster, tmp_path: Path) -> None:
    """The fixture stops exactly what it started: every pid it knows is one of its own."""
    pids = {p.pid for p in [*cluster.api_procs, *cluster.worker_procs]}
    assert os.getpid() not in pids
