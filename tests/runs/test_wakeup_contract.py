"""The wake-up contract: one suite that :class:`PgWakeup` and :class:`RedisWakeup` both pass.

Each case gets two started instances sharing one backend, as two Loom processes do: ``a`` and
``b`` (Postgres: two pools and two ``LISTEN`` connections on the module's database; Redis: two
clients on a dedicated database number, under a key prefix unique to the test). Wake-ups are
hints and may be spurious (``PgWakeup`` counts its (re)connection as one), so a case that
expects silence first drains what is already there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as redis

from loom.db.migrate import migrate
from loom.db.pool import open_pool
from loom.db.types import Pool
from loom.runs.wakeup import PgWakeup, RedisWakeup, Wakeup
from loom.storage.assistants import AssistantRepo
from loom.storage.runs import NewRun, RunRepo, StopAction
from loom.storage.threads import ThreadRepo
from tests.conftest import make_settings
from tests.runs.redis_db import redis_clients

REDIS_DB = 12
WAIT = 5.0  # upper bound on anything a case waits for (never reached when all is well)


@dataclass
class Stops:
    """What an instance's stop handlers were called with."""

    calls: list[tuple[uuid.UUID, StopAction]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, run_id: uuid.UUID, action: StopAction) -> None:
        self.calls.append((run_id, action))
        self.arrived.set()

    async def wait_for(self, n: int) -> list[tuple[uuid.UUID, StopAction]]:
        async with asyncio.timeout(WAIT):
            while len(self.calls) < n:
                self.arrived.clear()
                await self.arrived.wait()
        return self.calls


@dataclass
class Pair:
    backend: Backend
    a: Wakeup
    b: Wakeup
    stops_a: Stops
    stops_b: Stops


@pytest.fixture(scope="module")
async def pools(database_url: str) -> AsyncIterator[list[Pool]]:
    settings = make_settings(database_url, db_pool_min=1, db_pool_max=4)
    first = await open_pool(database_url, settings)
    second = await open_pool(database_url, settings)
    async with first.connection() as conn:
        await migrate(conn)
    yield [first, second]
    await first.close()
    await second.close()


@pytest.fixture(scope="module")
async def clients() -> AsyncIterator[list[redis.Redis]]:
    async with redis_clients(REDIS_DB) as pair:
        yield pair


@dataclass
class Backend:
    """Where instances of one kind meet: the module's database, or a Redis key prefix."""

    kind: str
    database_url: str
    pools: list[Pool]
    clients: list[redis.Redis]
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}:")

    def open(self, i: int) -> Wakeup:
        """An instance as process ``i`` (0 or 1) opens it."""
        if self.kind == "pg":
            return PgWakeup(self.database_url, self.pools[i])
        return RedisWakeup(self.clients[i], prefix=self.prefix)


@pytest.fixture(params=["pg", pytest.param("redis", marks=pytest.mark.redis)])
async def pair(
    request: pytest.FixtureRequest,
    database_url: str,
    pools: list[Pool],
    clients: list[redis.Redis],
) -> AsyncIterator[Pair]:
    backend = Backend(request.param, database_url, pools, clients)
    a, b = backend.open(0), backend.open(1)
    stops_a, stops_b = Stops(), Stops()
    a.on_stop(stops_a)
    b.on_stop(stops_b)
    await a.start()
    await b.start()
    yield Pair(backend, a, b, stops_a, stops_b)
    await a.aclose()
    await b.aclose()


async def drain(wakeup: Wakeup) -> None:
    """Consume wake-ups already delivered (spurious ones included)."""
    for _ in range(100):
        if not await wakeup.wait(0.05):
            return
    raise AssertionError("wake-ups keep coming with nothing notifying")


async def test_notify_wakes_a_waiter_in_another_process(pair: Pair) -> None:
    await drain(pair.b)
    waiter = asyncio.create_task(pair.b.wait(WAIT))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await pair.a.notify()
    assert await waiter is True


async def test_a_notify_made_before_the_wait_is_not_lost(pair: Pair) -> None:
    await drain(pair.b)
    await pair.a.notify()
    assert await pair.b.wait(WAIT) is True


async def test_wait_times_out_when_nothing_happens(pair: Pair) -> None:
    await drain(pair.a)
    await drain(pair.b)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await pair.b.wait(0.2) is False
    assert loop.time() - started >= 0.15
    assert await pair.a.wait(0.05) is False


async def test_several_notifies_wake_several_waiters(pair: Pair) -> None:
    await drain(pair.a)
    await drain(pair.b)
    waiters = [asyncio.create_task(pair.b.wait(WAIT)) for _ in range(3)]
    await asyncio.sleep(0.05)
    for _ in waiters:
        await pair.a.notify()
    assert await asyncio.gather(*waiters) == [True, True, True]


@pytest.mark.parametrize("action", ["cancel", "interrupt", "rollback"])
async def test_send_stop_reaches_the_handlers_of_every_process(
    pair: Pair, action: StopAction
) -> None:
    run_id = uuid.uuid4()
    await pair.a.send_stop(run_id, action)
    assert await pair.stops_b.wait_for(1) == [(run_id, action)]
    assert await pair.stops_a.wait_for(1) == [(run_id, action)]


async def test_stops_arrive_in_order_and_each_once(pair: Pair) -> None:
    sent: list[tuple[uuid.UUID, StopAction]] = [
        (uuid.uuid4(), action) for action in ("cancel", "interrupt", "rollback", "cancel")
    ]
    for run_id, action in sent[:2]:
        await pair.a.send_stop(run_id, action)
    for run_id, action in sent[2:]:
        await pair.b.send_stop(run_id, action)
    assert await pair.stops_a.wait_for(4) == sent
    assert await pair.stops_b.wait_for(4) == sent
    await asyncio.sleep(0.05)
    assert len(pair.stops_a.calls) == len(pair.stops_b.calls) == 4


async def test_a_failing_handler_does_not_stop_the_others(pair: Pair) -> None:
    def broken(run_id: uuid.UUID, action: StopAction) -> None:
        raise RuntimeError("boom")

    later = Stops()
    pair.b.on_stop(broken)
    pair.b.on_stop(later)
    first, second = uuid.uuid4(), uuid.uuid4()
    await pair.a.send_stop(first, "cancel")
    await pair.a.send_stop(second, "interrupt")
    assert await later.wait_for(2) == [(first, "cancel"), (second, "interrupt")]
    assert await pair.stops_b.wait_for(2) == [(first, "cancel"), (second, "interrupt")]


async def test_aclose_is_clean(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    third, fourth = pair.backend.open(0), pair.backend.open(1)
    stops = Stops()
    third.on_stop(stops)
    await third.start()
    run_id = uuid.uuid4()
    await pair.a.send_stop(run_id, "cancel")
    assert await stops.wait_for(1) == [(run_id, "cancel")]
    with caplog.at_level(logging.WARNING, logger="loom.runs.wakeup"):
        await third.aclose()
        await third.aclose()  # twice is fine
        await fourth.aclose()  # never started: fine too
        # A closed instance hears nothing more; the others still do.
        await pair.a.send_stop(uuid.uuid4(), "interrupt")
        await pair.stops_b.wait_for(2)
        await asyncio.sleep(0.05)
    assert stops.calls == [(run_id, "cancel")]
    assert [r for r in caplog.records if r.name == "loom.runs.wakeup"] == []
    # Nothing of it is left running: only the pair's own two listeners.
    ours = ("loom-pg-wakeup", "loom-redis-stop")
    listeners = [t for t in asyncio.all_tasks() if t.get_name() in ours]
    assert len(listeners) == 2, listeners


# --- Postgres: loom_create_run notifies in the statement that queues the run -------------------


def _new_run(thread_id: uuid.UUID, assistant_id: uuid.UUID, strategy: Any = "reject") -> NewRun:
    return NewRun(
        user_id="alice",
        thread_id=thread_id,
        assistant_id=assistant_id,
        input={"messages": []},
        config={},
        multitask_strategy=strategy,
        on_disconnect="continue",
        recursion_limit=25,
        checkpoint_id=None,
    )


async def _pg_pair(database_url: str, pools: list[Pool]) -> tuple[PgWakeup, PgWakeup, Stops]:
    a, b = PgWakeup(database_url, pools[0]), PgWakeup(database_url, pools[1])
    stops = Stops()
    b.on_stop(stops)
    await a.start()
    await b.start()
    await drain(a)
    await drain(b)
    return a, b, stops


async def test_pg_creating_a_pending_run_wakes_waiters(
    database_url: str, pools: list[Pool]
) -> None:
    assert PgWakeup.notifies_on_create and not RedisWakeup.notifies_on_create
    a, b, _ = await _pg_pair(database_url, pools)
    repo = RunRepo(pools[0])
    assistant = await AssistantRepo(pools[0]).create(
        "alice", "a", {"configurable": {"type": "chatbot"}}, False
    )
    thread = await ThreadRepo(pools[0]).create("alice", "t", assistant.assistant_id)
    try:
        waiter = asyncio.create_task(b.wait(WAIT))
        await asyncio.sleep(0.05)
        created = await repo.create(_new_run(thread.thread_id, assistant.assistant_id, "enqueue"))
        assert created.run.status == "pending"
        assert await waiter is True
        # Without ``notify`` nobody is woken.
        await repo.create(
            _new_run(thread.thread_id, assistant.assistant_id, "enqueue"), notify=False
        )
        assert await b.wait(0.2) is False
        # A run created already claimed (an idle thread) needs no worker: nobody is woken.
        other = await ThreadRepo(pools[0]).create("alice", "t2", assistant.assistant_id)
        claimed = await repo.create(
            _new_run(other.thread_id, assistant.assistant_id), claim_owner="w1", notify=True
        )
        assert claimed.run.status == "running"
        assert await b.wait(0.2) is False
    finally:
        await a.aclose()
        await b.aclose()


async def test_pg_strategy_signals_carry_the_right_action(
    database_url: str, pools: list[Pool]
) -> None:
    """``interrupt``/``rollback`` must never reach a worker as a plain ``cancel``: the run
    would end ``cancelled`` instead of ``interrupted``. The service signals the right action
    after creating the run; whatever ``loom_create_run`` sends itself must not contradict it."""
    a, b, stops = await _pg_pair(database_url, pools)
    repo = RunRepo(pools[0])
    assistant = await AssistantRepo(pools[0]).create(
        "alice", "a", {"configurable": {"type": "chatbot"}}, False
    )
    try:
        strategies: tuple[StopAction, ...] = ("interrupt", "rollback")
        for strategy in strategies:
            thread = await ThreadRepo(pools[0]).create("alice", "t", assistant.assistant_id)
            running = await repo.create(
                _new_run(thread.thread_id, assistant.assistant_id), claim_owner="w1"
            )
            created = await repo.create(
                _new_run(thread.thread_id, assistant.assistant_id, strategy), notify=True
            )
            assert created.stopping == [running.run.run_id]
            # What the service sends next (see RunService.create):
            await a.send_stop(running.run.run_id, strategy)
            calls = await stops.wait_for(1)
            await asyncio.sleep(0.2)  # loom_create_run's own notice may arrive too
            # every signal that arrives names the right action (never a bare cancel)
            assert stops.calls and set(stops.calls) == {(running.run.run_id, strategy)}, calls
            stops.calls.clear()
            row = await repo.get(running.run.run_id)
            assert row is not None and row.stop_action == strategy
    finally:
        await a.aclose()
        await b.aclose()


async def test_pg_malformed_stop_payloads_are_ignored(database_url: str, pools: list[Pool]) -> None:
    a, b, stops = await _pg_pair(database_url, pools)
    try:
        async with pools[0].connection() as conn:
            for payload in ("", "not-a-uuid cancel", f"{uuid.uuid4()} explode", "  "):
                await conn.execute("SELECT pg_notify('loom_cancel', %s)", (payload,))
        sentinel = uuid.uuid4()
        await a.send_stop(sentinel, "rollback")
        # Notifications arrive in order: once the sentinel is in, the others were ignored.
        assert await stops.wait_for(1) == [(sentinel, "rollback")]
    finally:
        await a.aclose()
        await b.aclose()
