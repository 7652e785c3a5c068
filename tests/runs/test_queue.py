"""The run queue against a real Postgres: claims, leases and their tokens, sweeping,
handing back, and the multitask strategies of ``loom_create_run``.

Every case starts from an empty ``run`` table (the queue is global to the database), and
makes its own threads.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from loom.db.migrate import migrate
from loom.db.pool import open_pool
from loom.db.types import Pool
from loom.errors import ThreadBusy
from loom.runs.queue import Claim, RunQueue
from loom.storage.assistants import AssistantRepo
from loom.storage.runs import Created, MultitaskStrategy, NewRun, RunRepo
from loom.storage.threads import ThreadRepo
from tests.conftest import make_settings

CONFIG = {"configurable": {"type": "chatbot", "system_message": "queue test"}}
LOST = "The worker running this run stopped"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await open_pool(database_url, make_settings(database_url, db_pool_max=8))
    async with pool.connection() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def assistant_id(pool: Pool) -> uuid.UUID:
    return (await AssistantRepo(pool).create("alice", "a", CONFIG, False)).assistant_id


@pytest.fixture(autouse=True)
async def _empty_queue(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM run")


@pytest.fixture
def queue(pool: Pool) -> RunQueue:
    return RunQueue(pool, lease_seconds=30, max_attempts=3)


@pytest.fixture
def runs(pool: Pool) -> RunRepo:
    return RunRepo(pool)


class Threads:
    def __init__(self, pool: Pool, runs: RunRepo, assistant_id: uuid.UUID) -> None:
        self._repo = ThreadRepo(pool)
        self._runs = runs
        self._assistant_id = assistant_id

    async def new(self) -> uuid.UUID:
        return (await self._repo.create("alice", "t", self._assistant_id)).thread_id

    async def run(
        self,
        thread_id: uuid.UUID,
        strategy: MultitaskStrategy = "enqueue",
        claim_owner: str | None = None,
        text: str = "hi",
    ) -> Created:
        new = NewRun(
            user_id="alice",
            thread_id=thread_id,
            assistant_id=self._assistant_id,
            input={"messages": [{"type": "human", "data": {"content": text}}]},
            config={},
            multitask_strategy=strategy,
            on_disconnect="continue",
            recursion_limit=25,
            checkpoint_id=None,
        )
        return await self._runs.create(new, claim_owner=claim_owner, lease_seconds=30)


@pytest.fixture
def threads(pool: Pool, runs: RunRepo, assistant_id: uuid.UUID) -> Threads:
    return Threads(pool, runs, assistant_id)


async def row(pool: Pool, run_id: uuid.UUID) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
        found = await cur.fetchone()
    assert found is not None
    return found


async def expire(pool: Pool, run_id: uuid.UUID) -> None:
    """The lease lapses (its worker stopped renewing it)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE run SET lease_until = now() - interval '1 second' WHERE run_id = %s",
            (run_id,),
        )


def ids(claims: list[Claim]) -> list[uuid.UUID]:
    return [c.run_id for c in claims]


# --- claiming ---------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_pending_run_of_each_idle_thread(
    queue: RunQueue, threads: Threads, pool: Pool, assistant_id: uuid.UUID
) -> None:
    t1, t2, t3 = await threads.new(), await threads.new(), await threads.new()
    r1 = (await threads.run(t1)).run
    r2 = (await threads.run(t1)).run  # queued behind r1
    r3 = (await threads.run(t2, claim_owner="elsewhere")).run  # t2 is busy
    r4 = (await threads.run(t2)).run
    r5 = (await threads.run(t3)).run
    assert [r.status for r in (r1, r2, r3, r4, r5)] == [
        "pending",
        "pending",
        "running",
        "pending",
        "pending",
    ]
    assert await queue.has_pending()

    claims = await queue.claim("w1", 10)
    assert ids(claims) == [r1.run_id, r5.run_id]  # oldest first, one per thread
    for claim in claims:
        assert claim.run.status == "running"
        assert claim.run.lease_owner == "w1"
        assert claim.run.attempt == 1
        assert claim.token == claim.run.claim_token
        assert claim.run.started_at is not None
        assert claim.assistant_config == CONFIG
        stored = await row(pool, claim.run_id)
        assert stored["claim_token"] == claim.token
        assert stored["lease_until"] > stored["started_at"]
    assert claims[0].token != claims[1].token
    assert claims[0].run.input == r1.input

    # Every thread is busy now.
    assert await queue.claim("w1", 10) == []
    assert await queue.has_pending()

    # r1 ends: r2 (queued behind it) is next; t2 still waits for r3.
    assert await queue.finish(r1.run_id, claims[0].token, "success", None) == (True, True)
    assert ids(await queue.claim("w2", 10)) == [r2.run_id]
    assert r3.claim_token is not None
    assert await queue.finish(r3.run_id, r3.claim_token, "success", None) == (True, True)
    assert ids(await queue.claim("w2", 10)) == [r4.run_id]
    assert not await queue.has_pending()


async def test_claim_takes_at_most_n(queue: RunQueue, threads: Threads) -> None:
    created = [(await threads.run(await threads.new())).run for _ in range(5)]
    first = await queue.claim("w", 2)
    second = await queue.claim("w", 2)
    third = await queue.claim("w", 2)
    assert ids(first) + ids(second) + ids(third) == [r.run_id for r in created]
    assert [len(first), len(second), len(third)] == [2, 2, 1]


async def test_concurrent_claimers_never_get_the_same_run(
    queue: RunQueue, threads: Threads, pool: Pool
) -> None:
    per_thread = 3
    thread_ids = [await threads.new() for _ in range(12)]
    queued = {t: [(await threads.run(t)).run.run_id for _ in range(per_thread)] for t in thread_ids}
    finished: list[uuid.UUID] = []
    for step in range(per_thread):
        got: dict[str, list[Claim]] = {"a": [], "b": []}
        while True:
            a, b = await asyncio.gather(queue.claim("a", 2), queue.claim("b", 2))
            if not a and not b:
                break
            got["a"] += a
            got["b"] += b
        claimed = ids(got["a"]) + ids(got["b"])
        assert len(claimed) == len(set(claimed)), "a run was claimed twice"
        assert not set(ids(got["a"])) & set(ids(got["b"]))
        # Exactly the next run of every thread, and no thread twice.
        assert sorted(claimed) == sorted(queued[t][step] for t in thread_ids)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT thread_id, count(*) AS n FROM run WHERE status = 'running'"
                " GROUP BY thread_id"
            )
            assert {r["n"] for r in await cur.fetchall()} == {1}
        for claim in got["a"] + got["b"]:
            settled, _ = await queue.finish(claim.run_id, claim.token, "success", None)
            assert settled
            finished.append(claim.run_id)
    assert len(finished) == len(thread_ids) * per_thread


# --- leases and tokens ------------------------------------------------------------------------


async def test_fencing_a_lost_lease_cannot_write(
    queue: RunQueue, threads: Threads, pool: Pool
) -> None:
    thread = await threads.new()
    run = (await threads.run(thread)).run
    [first] = await queue.claim("w1", 1)
    await expire(pool, run.run_id)
    swept = await queue.sweep(LOST)
    assert [(s.run_id, s.thread_id, s.status, s.error) for s in swept] == [
        (run.run_id, thread, "pending", None)
    ]
    [second] = await queue.claim("w2", 1)
    assert second.run_id == run.run_id
    assert second.token != first.token
    assert second.run.attempt == 2
    before = await row(pool, run.run_id)
    assert (before["status"], before["lease_owner"]) == ("running", "w2")

    # The first owner, still running somewhere, tries to write: nothing changes.
    assert await queue.finish(run.run_id, first.token, "success", None) == (False, False)
    assert await queue.hand_back(run.run_id, first.token) is None
    renewal = await queue.heartbeat({run.run_id: first.token})
    assert (renewal.held, renewal.lost) == ({}, [run.run_id])
    assert await row(pool, run.run_id) == before

    # The new owner settles it.
    assert await queue.finish(run.run_id, second.token, "error", "boom") == (True, False)
    after = await row(pool, run.run_id)
    assert (after["status"], after["error"], after["claim_token"]) == ("error", "boom", None)
    assert after["lease_owner"] is None and after["lease_until"] is None
    assert after["ended_at"] is not None
    # ...once: a second write with the same token is refused too.
    assert await queue.finish(run.run_id, second.token, "success", None) == (False, False)
    assert (await row(pool, run.run_id))["status"] == "error"


async def test_heartbeat_renews_only_runs_whose_token_matches(
    queue: RunQueue, threads: Threads, pool: Pool, runs: RunRepo
) -> None:
    for _ in range(3):
        await threads.run(await threads.new())
    a, b, c = await queue.claim("w1", 3)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE run SET lease_until = now() + interval '1 second' WHERE run_id = ANY(%s)",
            ([a.run_id, b.run_id, c.run_id],),
        )
    before = {x.run_id: (await row(pool, x.run_id))["lease_until"] for x in (a, b, c)}
    assert await queue.finish(c.run_id, c.token, "success", None) == (True, False)
    wrong = uuid.uuid4()
    assert await runs.request_stop(a.run_id, "interrupt")

    renewal = await queue.heartbeat({a.run_id: a.token, b.run_id: wrong, c.run_id: c.token})
    assert renewal.held == {a.run_id: "interrupt"}
    assert sorted(renewal.lost) == sorted([b.run_id, c.run_id])
    assert (await row(pool, a.run_id))["lease_until"] > before[a.run_id]
    assert (await row(pool, b.run_id))["lease_until"] == before[b.run_id]
    assert (await queue.heartbeat({b.run_id: b.token})).held == {b.run_id: None}
    empty = await queue.heartbeat({})
    assert (empty.held, empty.lost) == ({}, [])


async def test_sweep_leaves_live_leases_alone(queue: RunQueue, threads: Threads) -> None:
    await threads.run(await threads.new())
    [claim] = await queue.claim("w1", 1)
    assert await queue.sweep(LOST) == []
    assert await queue.finish(claim.run_id, claim.token, "success", None) == (True, False)


async def test_sweep_requeues_then_ends_the_run_after_max_attempts(
    pool: Pool, threads: Threads, runs: RunRepo
) -> None:
    queue = RunQueue(pool, lease_seconds=30, max_attempts=2)
    thread = await threads.new()
    run = (await threads.run(thread, strategy="reject")).run
    tokens = []
    for attempt in (1, 2):
        [claim] = await queue.claim("w", 1)
        assert claim.run.attempt == attempt
        tokens.append(claim.token)
        await expire(pool, run.run_id)
        [swept] = await queue.sweep(LOST)
        if attempt == 1:
            assert (swept.status, swept.error) == ("pending", None)
            assert (await row(pool, run.run_id))["status"] == "pending"
        else:
            assert (swept.run_id, swept.status, swept.error) == (run.run_id, "error", LOST)
    ended = await row(pool, run.run_id)
    assert (ended["status"], ended["error"], ended["attempt"]) == ("error", LOST, 2)
    assert ended["ended_at"] is not None and ended["claim_token"] is None
    assert await queue.claim("w", 1) == []
    # The thread is free again: a new run is accepted even with strategy reject.
    fresh = (await threads.run(thread, strategy="reject", claim_owner="w")).run
    assert fresh.status == "running"
    assert await runs.active_ids(thread) == [fresh.run_id]


async def test_sweep_cancels_a_run_whose_stop_was_requested(
    queue: RunQueue, threads: Threads, runs: RunRepo, pool: Pool
) -> None:
    await threads.run(await threads.new())
    [claim] = await queue.claim("w", 1)
    assert await runs.request_stop(claim.run_id, "cancel")
    await expire(pool, claim.run_id)
    [swept] = await queue.sweep(LOST)
    assert (swept.status, swept.error) == ("cancelled", "The run was cancelled")
    assert (await row(pool, claim.run_id))["ended_at"] is not None


# --- handing back -----------------------------------------------------------------------------


async def test_hand_back_returns_the_run_without_counting_an_attempt(
    queue: RunQueue, threads: Threads, pool: Pool
) -> None:
    run = (await threads.run(await threads.new())).run
    [claim] = await queue.claim("w1", 1)
    assert await queue.hand_back(run.run_id, uuid.uuid4()) is None  # not the holder
    assert await queue.hand_back(run.run_id, claim.token) == "pending"
    back = await row(pool, run.run_id)
    assert (back["status"], back["attempt"], back["claim_token"], back["lease_owner"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert back["error"] is None and back["ended_at"] is None
    assert await queue.hand_back(run.run_id, claim.token) is None  # once
    [again] = await queue.claim("w2", 1)
    assert (again.run_id, again.run.attempt) == (run.run_id, 1)
    assert again.token != claim.token


async def test_hand_back_after_a_stop_request_cancels(
    queue: RunQueue, threads: Threads, runs: RunRepo, pool: Pool
) -> None:
    thread = await threads.new()
    run = (await threads.run(thread)).run
    queued = (await threads.run(thread)).run
    [claim] = await queue.claim("w1", 1)
    assert await runs.request_stop(run.run_id, "cancel")
    assert await queue.hand_back(run.run_id, claim.token) == "cancelled"
    ended = await row(pool, run.run_id)
    assert (ended["status"], ended["error"], ended["attempt"]) == (
        "cancelled",
        "The run was cancelled",
        1,
    )
    assert ended["ended_at"] is not None
    assert ids(await queue.claim("w1", 1)) == [queued.run_id]


# --- creating runs: the multitask strategies ---------------------------------------------------


async def test_reject_refuses_a_busy_thread(threads: Threads, queue: RunQueue) -> None:
    thread = await threads.new()
    first = (await threads.run(thread, strategy="reject")).run
    with pytest.raises(ThreadBusy):
        await threads.run(thread, strategy="reject")  # pending
    [claim] = await queue.claim("w", 1)
    with pytest.raises(ThreadBusy):
        await threads.run(thread, strategy="reject")  # running
    assert await queue.finish(first.run_id, claim.token, "success", None) == (True, False)
    assert (await threads.run(thread, strategy="reject")).run.status == "pending"


async def test_enqueue_queues_behind(threads: Threads, queue: RunQueue, runs: RunRepo) -> None:
    thread = await threads.new()
    first = (await threads.run(thread, strategy="reject", claim_owner="w")).run
    second = await threads.run(thread, strategy="enqueue", claim_owner="w")
    third = await threads.run(thread, strategy="enqueue")
    assert (second.run.status, third.run.status) == ("pending", "pending")
    assert second.cancelled == second.stopping == third.cancelled == third.stopping == []
    assert await runs.active_ids(thread) == [first.run_id, second.run.run_id, third.run.run_id]
    assert await queue.claim("w", 5) == []
    assert first.claim_token is not None
    assert await queue.finish(first.run_id, first.claim_token, "success", None) == (True, True)
    assert ids(await queue.claim("w", 5)) == [second.run.run_id]


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_displace_the_active_runs(
    threads: Threads, runs: RunRepo, queue: RunQueue, strategy: MultitaskStrategy
) -> None:
    thread = await threads.new()
    running = (await threads.run(thread, claim_owner="w")).run
    queued = [(await threads.run(thread)).run for _ in range(2)]
    created = await threads.run(thread, strategy=strategy, claim_owner="w")
    new = created.run
    assert created.stopping == [running.run_id]
    assert sorted(created.cancelled) == sorted(r.run_id for r in queued)
    assert new.status == "pending"  # the running one has yet to stop
    assert new.rollback_of == (running.run_id if strategy == "rollback" else None)
    assert new.multitask_strategy == strategy
    stopping = await runs.get(running.run_id)
    assert stopping is not None
    assert (stopping.status, stopping.stop_action) == ("running", strategy)
    for r in queued:
        got = await runs.get(r.run_id)
        assert got is not None
        assert (got.status, got.error) == ("cancelled", "Replaced by a newer run on the thread")
        assert got.ended_at is not None
    assert await runs.active_ids(thread) == [running.run_id, new.run_id]
    # Once the old run has stopped, the new one is next.
    assert running.claim_token is not None
    status = "interrupted" if strategy == "interrupt" else "cancelled"
    assert await queue.finish(running.run_id, running.claim_token, status, None) == (True, True)
    assert ids(await queue.claim("w", 5)) == [new.run_id]


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_on_an_idle_thread_displace_nothing(
    threads: Threads, strategy: MultitaskStrategy
) -> None:
    thread = await threads.new()
    created = await threads.run(thread, strategy=strategy, claim_owner="w")
    assert (created.cancelled, created.stopping) == ([], [])
    assert created.run.status == "running"
    assert created.run.rollback_of is None


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_cancel_pending_runs(
    threads: Threads, queue: RunQueue, strategy: MultitaskStrategy
) -> None:
    thread = await threads.new()
    queued = (await threads.run(thread)).run
    created = await threads.run(thread, strategy=strategy)
    assert (created.cancelled, created.stopping) == ([queued.run_id], [])
    assert created.run.rollback_of is None
    assert ids(await queue.claim("w", 5)) == [created.run.run_id]


async def test_claim_owner_creates_the_run_claimed_only_on_an_idle_thread(
    threads: Threads, pool: Pool, queue: RunQueue
) -> None:
    thread = await threads.new()
    created = (await threads.run(thread, strategy="enqueue", claim_owner="w1")).run
    assert created.status == "running"
    assert (created.lease_owner, created.attempt) == ("w1", 1)
    assert created.claim_token is not None and created.started_at is not None
    stored = await row(pool, created.run_id)
    assert stored["claim_token"] == created.claim_token
    assert stored["lease_until"] is not None and stored["lease_until"] > stored["started_at"]
    # The token is a real claim: it renews and settles.
    assert (await queue.heartbeat({created.run_id: created.claim_token})).lost == []

    behind = (await threads.run(thread, strategy="enqueue", claim_owner="w1")).run
    assert behind.status == "pending"
    assert (behind.lease_owner, behind.claim_token, behind.attempt) == (None, None, 0)
    assert behind.started_at is None
    assert (await row(pool, behind.run_id))["lease_until"] is None
    assert await queue.finish(created.run_id, created.claim_token, "success", None) == (
        True,
        True,
    )
