"""Per-user limits: requests per minute, active runs, open streams, upload bytes per day.

Each answers 429 with ``Retry-After`` (the native ``{"detail": ...}``, OpenAI's error object
under ``/v1``, ChatKit's ``{"detail", "code"}``) and lets the user through again once the
reason is gone. Runs on a real server in either topology; the counters' own reset (a new
minute, an expired stream lease) is checked on the limiters with a clock of the test's.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest
import redis.asyncio as aioredis
import requests

from loom.errors import RateLimited
from loom.limits import RequestLimiter, StreamSlots
from tests.conftest import make_settings, start_loom
from tests.fakes.openai_server import FakeOpenAI
from tests.protocols.chatkit.helpers import ChatKit, create_req
from tests.runs.helpers import CHATBOT, new_thread, run_body, wait_run
from tests.runs.sse_client import iter_events, read_stream

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAX_RUNS = 2
MAX_STREAMS = 1
QUOTA = 1000


def _limited(r: requests.Response) -> int:
    """The Retry-After of a native 429 (its body is the standard one)."""
    assert r.status_code == 429, r.text
    assert set(r.json()) == {"detail"} and isinstance(r.json()["detail"], str)
    retry = int(r.headers["retry-after"])
    assert retry >= 1
    return retry


@pytest.fixture(scope="module")
def loom(database_url: str, fake_llm: FakeOpenAI, request: pytest.FixtureRequest) -> Iterator[Any]:
    settings = make_settings(
        database_url,
        fake_llm,
        max_active_runs=MAX_RUNS,
        max_open_streams=MAX_STREAMS,
        ingest_bytes_per_day=QUOTA,
    )
    with start_loom(settings, request) as server:
        yield server


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def _sdk(loom: Any, user: str) -> openai.OpenAI:
    r = loom.client(user).post("/api-keys", json={"name": "sdk"})
    assert r.status_code == 200, r.text
    return openai.OpenAI(base_url=f"{loom.url}/v1", api_key=r.json()["key"], max_retries=0)


# --- requests per minute -----------------------------------------------------------------------


def test_a_burst_of_requests_is_refused_with_retry_after(
    database_url: str, fake_llm: FakeOpenAI, request: pytest.FixtureRequest
) -> None:
    limit = 15
    settings = make_settings(database_url, fake_llm, rate_limit_per_minute=limit)
    with start_loom(settings, request) as server:
        alice = server.client(_user())
        answers = [alice.get("/me") for _ in range(2 * limit + 1)]
        statuses = [r.status_code for r in answers]
        assert 429 in statuses, statuses
        first = statuses.index(429)
        # (a minute may turn during the burst: then up to twice the limit gets through)
        assert limit <= first <= 2 * limit, statuses
        assert all(s == 200 for s in statuses[:first])
        assert 1 <= _limited(answers[first]) <= 60
        # per user: someone else is still served, and so is an unauthenticated /health
        assert server.client(_user()).get("/me").status_code == 200
        assert server.client(None).get("/health").status_code == 200
        # the OpenAI adapter answers its own 429 shape
        bob = _user()
        sdk = _sdk(server, bob)
        with pytest.raises(openai.RateLimitError) as info:
            for _ in range(2 * limit + 1):
                sdk.beta.assistants.list()
        assert info.value.status_code == 429
        assert int(info.value.response.headers["retry-after"]) >= 1
        body = info.value.response.json()["error"]
        assert (body["type"], body["code"]) == ("requests", "rate_limit_exceeded")


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_the_request_window_resets(shared: bool, redis_url: str, redis_prefix: str) -> None:
    async def check() -> None:
        now = [1_000_040.0]  # 20 s into a minute
        client = aioredis.Redis.from_url(redis_url) if shared else None
        limiter = RequestLimiter(3, client, prefix=redis_prefix + "w:", clock=lambda: now[0])
        try:
            for _ in range(3):
                await limiter.hit("u")
            with pytest.raises(RateLimited) as info:
                await limiter.hit("u")
            assert info.value.retry_after == 41  # the 40 s left, rounded up
            await limiter.hit("v")  # another user
            now[0] += 40  # the next minute
            for _ in range(3):
                await limiter.hit("u")
            with pytest.raises(RateLimited):
                await limiter.hit("u")
        finally:
            if client is not None:
                await client.aclose()

    asyncio.run(check())


# --- active runs -------------------------------------------------------------------------------


def test_active_runs_are_limited_until_one_ends(loom: Any, fake_llm: FakeOpenAI) -> None:
    user = _user()
    client = loom.client(user)
    threads = [new_thread(client, CHATBOT)[1] for _ in range(MAX_RUNS + 1)]
    for _ in range(MAX_RUNS):
        fake_llm.fault("stall")
    running = []
    for thread_id in threads[:MAX_RUNS]:
        r = client.post("/runs", json=run_body(thread_id, "wait"))
        assert r.status_code == 200, r.text
        running.append(r.json()["run_id"])
    over = client.post("/runs", json=run_body(threads[-1], "one too many"))
    _limited(over)
    assert client.get(f"/threads/{threads[-1]}/runs").json() == []  # nothing was created
    # streamed runs and the OpenAI adapter count the same runs
    _limited(client.post("/runs/stream", json=run_body(threads[-1], "stream it")))
    sdk = _sdk(loom, user)
    assistant = sdk.beta.assistants.create(model="gpt-4o-mini")
    thread = sdk.beta.threads.create()
    with pytest.raises(openai.RateLimitError) as info:
        sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert int(info.value.response.headers["retry-after"]) >= 1
    # another user is not affected
    other = loom.client(_user())
    _, other_thread = new_thread(other, CHATBOT)
    r = other.post("/runs", json=run_body(other_thread, "hello"))
    assert r.status_code == 200, r.text
    wait_run(other, r.json()["run_id"])
    # one ends: there is room again
    cancelled = client.post(f"/runs/{running[0]}/cancel")
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    r = client.post("/runs", json=run_body(threads[-1], "now there is room"))
    assert r.status_code == 200, r.text
    assert wait_run(client, r.json()["run_id"])["status"] == "success"
    client.post(f"/runs/{running[1]}/cancel")


def test_interrupting_a_pending_run_does_not_count_it(loom: Any, fake_llm: FakeOpenAI) -> None:
    """A run that replaces its thread's pending runs takes their place, even at the limit."""
    client = loom.client(_user())
    first, second = (new_thread(client, CHATBOT)[1] for _ in range(2))
    fake_llm.fault("stall")
    stalled = client.post("/runs", json=run_body(first, "wait")).json()["run_id"]
    wait_run(client, stalled, until={"running"})
    queued = client.post(
        "/runs", json={**run_body(first, "queued"), "multitask_strategy": "enqueue"}
    )
    assert queued.status_code == 200, queued.text
    _limited(client.post("/runs", json=run_body(second, "over")))
    fake_llm.fault("stall")
    replacing = client.post(
        "/runs", json={**run_body(first, "instead"), "multitask_strategy": "interrupt"}
    )
    assert replacing.status_code == 200, replacing.text
    assert wait_run(client, queued.json()["run_id"])["status"] == "cancelled"
    client.post(f"/runs/{replacing.json()['run_id']}/cancel")
    client.post(f"/runs/{stalled}/cancel")


# --- open streams ------------------------------------------------------------------------------


def _open_stream(client: requests.Session, thread_id: str) -> tuple[requests.Response, Any]:
    r = client.post("/runs/stream", json=run_body(thread_id, "stream"), stream=True)
    assert r.status_code == 200, r.text
    events = iter_events(r)
    first = next(events)
    assert first.event == "metadata"
    return r, (events, first.data["run_id"])


def test_open_streams_are_limited_until_one_closes(loom: Any, fake_llm: FakeOpenAI) -> None:
    user = _user()
    client = loom.client(user)
    first, second = (new_thread(client, CHATBOT)[1] for _ in range(2))
    fake_llm.fault("stall")
    response, (events, run_id) = _open_stream(client, first)
    try:
        # a new streamed run is refused before it is created
        _limited(client.post("/runs/stream", json=run_body(second, "another")))
        assert client.get(f"/threads/{second}/runs").json() == []
        # so is following a run, and a background run is still fine
        _limited(client.get(f"/runs/{run_id}/stream"))
        # the OpenAI adapter (stream=true) and ChatKit answer their own 429s
        sdk = _sdk(loom, user)
        assistant = sdk.beta.assistants.create(model="gpt-4o-mini")
        with pytest.raises(openai.RateLimitError):
            sdk.beta.threads.create_and_run(
                assistant_id=assistant.id,
                thread={"messages": [{"role": "user", "content": "hi"}]},
                stream=True,
            )
        kit = ChatKit(loom.client(user)).post(create_req("hello"))
        assert kit.status_code == 429, kit.text
        assert kit.json()["code"] == "rate_limited"
        assert int(kit.headers["retry-after"]) >= 1
        # someone else may stream
        other = loom.client(_user())
        _, theirs = new_thread(other, CHATBOT)
        fake_llm.reply(text="Yours.")
        assert read_stream(other.post("/runs/stream", json=run_body(theirs, "x"))).names[-1] == (
            "end"
        )
        # the stream ends: its place is free again
        client.post(f"/runs/{run_id}/cancel")
        assert [e.event for e in events][-1] == "end"
    finally:
        response.close()
    fake_llm.set_default(text="Again.")
    for _ in range(200):  # the server frees the place once it has closed the stream
        again = client.post("/runs/stream", json=run_body(second, "again"))
        if again.status_code != 429:
            break
    stream = read_stream(again)
    assert stream.status_code == 200 and stream.names[-1] == "end", stream.names


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_stream_slot_left_behind_expires(shared: bool, redis_url: str, redis_prefix: str) -> None:
    """A process that died holding a slot: its lease runs out and the place is free."""

    async def check() -> None:
        now = [5_000.0]
        client = aioredis.Redis.from_url(redis_url) if shared else None
        slots = StreamSlots(2, 60.0, client, prefix=redis_prefix + "s:", clock=lambda: now[0])
        try:
            await slots.acquire("u")
            kept = await slots.acquire("u")
            with pytest.raises(RateLimited):
                await slots.acquire("u")
            await kept.release()
            again = await slots.acquire("u")  # a release frees a place at once
            now[0] += 45
            await slots.renew("u", again._slot_id)  # this one is renewed, the first is not
            now[0] += 30
            await slots.acquire("u")  # the first one's lease ran out
            with pytest.raises(RateLimited):
                await slots.acquire("u")
        finally:
            if client is not None:
                await client.aclose()

    asyncio.run(check())


# --- upload bytes per day ----------------------------------------------------------------------


def _ingest(client: requests.Session, assistant_id: str, size: int) -> requests.Response:
    config = json.dumps({"configurable": {"assistant_id": assistant_id}})
    text = ("quota test words " * (size // 17 + 1))[:size].encode()
    return client.post(
        "/ingest", files=[("files", ("notes.txt", text, "text/plain"))], data={"config": config}
    )


def test_upload_bytes_per_day(loom: Any, database_url: str) -> None:
    user = _user()
    client = loom.client(user)
    assistant_id, _ = new_thread(client, CHATBOT)
    ok = _ingest(client, assistant_id, 600)
    assert ok.status_code == 200, ok.text
    over = _ingest(client, assistant_id, 600)
    retry = _limited(over)
    assert retry <= 24 * 3600 + 1  # tomorrow (UTC)
    # the OpenAI adapter's file uploads and ChatKit's attachments count in the same quota
    sdk = _sdk(loom, user)
    with pytest.raises(openai.RateLimitError):
        sdk.files.create(file=("a.txt", b"x" * 500), purpose="assistants")
    kit = loom.client(user).post(
        "/chatkit/upload", files={"file": ("a.txt", b"y" * 500, "text/plain")}
    )
    assert kit.status_code == 429 and kit.json()["code"] == "rate_limited", kit.text
    assert int(kit.headers["retry-after"]) >= 1
    # what fits still goes in
    small = _ingest(client, assistant_id, 400)
    assert small.status_code == 200, small.text
    _limited(_ingest(client, assistant_id, 1))
    # another user has a quota of their own
    other = loom.client(_user())
    theirs, _ = new_thread(other, CHATBOT)
    assert _ingest(other, theirs, 600).status_code == 200
    # a new day
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE user_upload_usage SET day = day - 1 WHERE user_id = %s", (user,))
    assert _ingest(client, assistant_id, 900).status_code == 200
    sdk.files.create(file=("b.txt", b"z" * 100), purpose="assistants")
