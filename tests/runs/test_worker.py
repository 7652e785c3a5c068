"""Workers racing for runs: leases that lapse under a running worker, and draining.

One runtime (``open_runtime``: real Postgres, the in-process broker, ``PgWakeup``, the fake
model) and two :class:`Worker` objects on it, each with a queue that records what it wrote
about runs (``finish`` / ``hand_back``: real statements, only observed). Workers hold one
run at a time, so a run they give up goes to the other one.

What a run streamed is checked by folding its event log into messages, which must be
exactly the thread's final state: no message of a stale attempt survives in the stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from loom.agents.serialize import message_to_dict
from loom.agents.state import messages_of
from loom.runs.events import (
    EndEvent,
    Envelope,
    ErrorEvent,
    MessageDelta,
    MessageRemove,
    MessageUpsert,
)
from loom.runs.executor import RunExecutor, stored_input
from loom.runs.queue import Claim, RunQueue
from loom.runs.service import RunRequest, RunService
from loom.runs.worker import Worker, WorkerOptions
from loom.runtime import Runtime, open_runtime
from loom.storage.runs import NewRun, Run, RunStatus
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI, tokenize

LEASE = 2.0  # heartbeats every 2/3 s
SLOW = " ".join(f"slow{i}" for i in range(40))  # 40 tokens, 2 s at 0.05 s a token
QUICK = "The second attempt answers at once."
WAIT = 15.0  # upper bound on anything a case waits for (never reached when all is well)
CHATBOT = {"configurable": {"type": "chatbot"}}


class RecordingQueue(RunQueue):
    """The real queue, noting every outcome a worker tried to write and whether it landed."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.finishes: list[tuple[uuid.UUID, uuid.UUID, RunStatus, bool]] = []
        self.hand_backs: list[tuple[uuid.UUID, uuid.UUID, RunStatus | None]] = []
        self.claimed: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.after_claim: Callable[[], None] | None = None

    async def claim(self, owner: str, n: int) -> list[Claim]:
        claims = await super().claim(owner, n)
        self.claimed += [(c.run_id, c.token) for c in claims]
        if claims and self.after_claim is not None:
            self.after_claim()
        return claims

    async def finish(
        self, run_id: uuid.UUID, token: uuid.UUID, status: RunStatus, error: str | None
    ) -> tuple[bool, bool]:
        settled, more = await super().finish(run_id, token, status, error)
        self.finishes.append((run_id, token, status, settled))
        return settled, more

    async def hand_back(self, run_id: uuid.UUID, token: uuid.UUID) -> RunStatus | None:
        status = await super().hand_back(run_id, token)
        self.hand_backs.append((run_id, token, status))
        return status


@pytest.fixture(scope="module")
async def runtime(database_url: str, fake_llm: FakeOpenAI) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url,
        fake_llm,
        lease_seconds=LEASE,
        worker_concurrency=1,
        worker_poll_seconds=0.2,
        drain_seconds=5.0,
    )
    async with AsyncExitStack() as stack:
        yield await open_runtime(settings, stack)


@dataclass
class Setup:
    runtime: Runtime
    service: RunService
    queues: dict[str, RecordingQueue] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)

    def worker(
        self, name: str, heartbeat_seconds: float | None = None, concurrency: int = 1
    ) -> Worker:
        rt = self.runtime
        s = rt.settings
        queue = RecordingQueue(rt.pool, s.lease_seconds, s.run_max_attempts)
        worker = Worker(
            queue=queue,
            executor=RunExecutor(rt.factory, rt.checkpointer, queue, rt.broker),
            broker=rt.broker,
            wakeup=rt.wakeup,
            options=WorkerOptions(
                concurrency=concurrency,
                poll_seconds=s.worker_poll_seconds,
                heartbeat_seconds=heartbeat_seconds or s.heartbeat_seconds,
                sweep_seconds=s.sweep_seconds,
                drain_seconds=s.drain_seconds,
            ),
            owner=f"{name}-{uuid.uuid4().hex[:6]}",
        )
        self.queues[name] = queue
        self.workers[name] = worker
        return worker

    async def new_run(self, text: str = "go") -> Run:
        rt = self.runtime
        assistant = await rt.assistants.create("alice", "a", CHATBOT, False)
        thread = await rt.threads.create("alice", "t", assistant.assistant_id)
        request = RunRequest(
            thread_id=thread.thread_id,
            assistant_id=None,
            input={"messages": [{"type": "human", "content": text}]},
            config=None,
        )
        return await self.service.create("alice", request)

    async def row(self, run_id: uuid.UUID) -> dict[str, Any]:
        async with self.runtime.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
            found = await cur.fetchone()
        assert found is not None
        return found

    async def expire(self, run_id: uuid.UUID) -> None:
        async with self.runtime.pool.connection() as conn:
            await conn.execute(
                "UPDATE run SET lease_until = now() - interval '1 second' WHERE run_id = %s",
                (run_id,),
            )

    async def state(self, run: Run) -> list[tuple[str, str, str]]:
        graph, _ = self.runtime.factory.graph(CHATBOT)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(run.thread_id)}})
        return [_brief(message_to_dict(m)) for m in messages_of(snapshot.values)]


@pytest.fixture
async def setup(runtime: Runtime) -> AsyncIterator[Setup]:
    service = RunService(
        runs=runtime.runs,
        threads=runtime.threads,
        assistants=runtime.assistants,
        factory=runtime.factory,
        broker=runtime.broker,
        wakeup=runtime.wakeup,
        worker=None,
        default_recursion_limit=25,
        lease_seconds=runtime.settings.lease_seconds,
    )
    # Whatever an earlier case left active must not be claimed by this one's workers.
    async with runtime.pool.connection() as conn:
        await conn.execute(
            "UPDATE run SET status = 'cancelled', claim_token = NULL, lease_owner = NULL,"
            " lease_until = NULL WHERE status IN ('pending', 'running')"
        )
    made = Setup(runtime, service)
    yield made
    for worker in made.workers.values():
        await worker.drain(seconds=0)


def _brief(message: dict[str, Any]) -> tuple[str, str, str]:
    return (message["type"], str(message.get("id")), message["content"])


def fold(log: list[Envelope]) -> list[tuple[str, str, str]]:
    """The messages a client ends up with after applying the log's patches in order."""
    messages: dict[str, dict[str, Any]] = {}
    for envelope in log:
        event = envelope.event
        if isinstance(event, MessageUpsert):
            messages[str(event.message.get("id"))] = dict(event.message)
        elif isinstance(event, MessageDelta):
            assert event.id in messages, f"a delta to a message not in the stream: {envelope}"
            messages[event.id]["content"] += event.delta
        elif isinstance(event, MessageRemove):
            messages.pop(event.id, None)
    return [_brief(m) for m in messages.values()]


async def until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check()`` (sync or async) until it returns something true, with a deadline."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def streaming_started(setup: Setup, run_id: uuid.UUID, deltas: int = 3) -> None:
    async def started() -> bool:
        log = await setup.runtime.broker.read(str(run_id))
        return sum(isinstance(e.event, MessageDelta) for e in log) >= deltas

    await until(started, "the model to stream")


async def whole_log(setup: Setup, run_id: uuid.UUID) -> list[Envelope]:
    """Follow the run's stream from the start until its end."""
    out: list[Envelope] = []
    async with asyncio.timeout(WAIT):
        async for batch in setup.service.follow(run_id, 0, heartbeat=0.5):
            out.extend(batch)
    assert [e.seq for e in out] == list(range(1, len(out) + 1))
    assert [isinstance(e.event, EndEvent) for e in out].count(True) == 1
    return out


def settled(queue: RecordingQueue, run_id: uuid.UUID) -> list[tuple[uuid.UUID, RunStatus]]:
    return [(token, status) for rid, token, status, ok in queue.finishes if rid == run_id and ok]


# --- a lease lapses under a running worker ----------------------------------------------------


async def test_a_lost_lease_is_taken_over_and_only_the_new_holder_writes(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    fake_llm.reply(text=SLOW, token_delay=0.05)
    fake_llm.reply(text=QUICK)
    a = setup.worker("a")
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)

    b = setup.worker("b")
    await b.start()
    # The lease lapses while a still executes (as if its heartbeats had not landed), and b's
    # sweeper returns the run to the queue. (a's heartbeat may renew it in between: retry.)
    for _ in range(20):
        await setup.expire(run.run_id)
        await b.sweep_once()
        if (await setup.row(run.run_id))["lease_owner"] != a.owner:
            break
    await until(lambda: setup.queues["b"].claimed, "worker b to claim the run")
    [(_, token_a)] = setup.queues["a"].claimed
    [(_, token_b)] = setup.queues["b"].claimed
    assert token_a != token_b
    assert a.holds(run.run_id)  # a has not noticed yet: two executions at once

    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None and ended.status == "success"
    await until(lambda: not a.holds(run.run_id), "worker a to notice it lost the run")

    # The outcome was written once, by the holder of the current token.
    assert settled(setup.queues["b"], run.run_id) == [(token_b, "success")]
    assert settled(setup.queues["a"], run.run_id) == []
    assert all(t == token_a for _, t, _, _ in setup.queues["a"].finishes)
    final = await setup.row(run.run_id)
    assert (final["status"], final["attempt"], final["claim_token"]) == ("success", 2, None)

    # The stream: one end, and it folds into exactly the thread's messages.
    log = await whole_log(setup, run.run_id)
    assert log[-1].event == EndEvent(status="success")
    assert not any(isinstance(e.event, ErrorEvent) for e in log)
    state = await setup.state(run)
    assert [(t, c) for t, _, c in state] == [("human", "go"), ("ai", QUICK)]
    assert fold(log) == state


async def _stale_worker_finishes_first(
    setup: Setup, fake_llm: FakeOpenAI
) -> tuple[Run, list[Envelope]]:
    """Worker a never hears that it lost the run (no heartbeat in time, as in a paused
    process): it runs to the end and tries to record its outcome with its old token, while
    b executes the run again."""
    fake_llm.reply(text=SLOW, token_delay=0.05)
    fake_llm.reply(text=QUICK, token_delay=0.4)  # b usually ends after a
    a = setup.worker("a", heartbeat_seconds=60)
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)

    await setup.expire(run.run_id)
    b = setup.worker("b")
    await b.start()
    await b.sweep_once()
    await until(lambda: setup.queues["b"].claimed, "worker b to claim the run")
    [(_, token_a)] = setup.queues["a"].claimed
    [(_, token_b)] = setup.queues["b"].claimed

    await until(lambda: setup.queues["a"].finishes, "worker a to finish")
    assert setup.queues["a"].finishes == [(run.run_id, token_a, "success", False)]
    # Untouched: still b's, unless b was quicker and settled it already.
    assert (await setup.row(run.run_id))["claim_token"] in (token_b, None)
    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None and ended.status == "success"
    assert settled(setup.queues["b"], run.run_id) == [(token_b, "success")]
    return run, await whole_log(setup, run.run_id)


async def test_a_stale_worker_that_finishes_first_writes_no_outcome_and_no_events(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    _, log = await _stale_worker_finishes_first(setup, fake_llm)
    assert log[-1].event == EndEvent(status="success")
    assert [(t, c) for t, _, c in fold(log)] == [("human", "go"), ("ai", QUICK)]


@pytest.mark.xfail(
    strict=True,
    reason="known gap: the lease is expired by hand while the stale worker's heartbeats still "
    "succeed; its claim is revoked (and its checkpoint writes refused) only at its next "
    "heartbeat, and a checkpoint written before that becomes the thread's head. A real "
    "expiry needs heartbeats to fail for most of a lease, and the worker stops itself first",
)
async def test_a_stale_worker_does_not_change_the_thread(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    run, log = await _stale_worker_finishes_first(setup, fake_llm)
    assert await setup.state(run) == fold(log)


async def test_a_worker_that_claims_again_a_run_it_still_runs_keeps_only_the_new_one(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    """The lease lapses and the same worker (it has room) claims the run again before its
    heartbeat noticed: the old execution is stale. The worker must go on holding (renewing,
    stopping) the new one after the old one ends."""
    fake_llm.reply(text=SLOW, token_delay=0.05)
    fake_llm.reply(text=SLOW, token_delay=0.1)  # the new execution outlives the old one
    a = setup.worker("a", concurrency=2)
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)
    old_execution = a._held[a._current[run.run_id]].task
    for _ in range(20):
        await setup.expire(run.run_id)
        await a.sweep_once()
        if (await setup.row(run.run_id))["claim_token"] != setup.queues["a"].claimed[0][1]:
            break
    await until(lambda: len(setup.queues["a"].claimed) == 2, "worker a to claim it again")
    [(_, old), (_, new)] = setup.queues["a"].claimed

    async with asyncio.timeout(WAIT):
        outcome = await old_execution
    assert outcome.status is None  # the stale execution wrote nothing
    assert a.holds(run.run_id) and a._current[run.run_id] == new
    assert a.running == 1

    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None and ended.status == "success"
    final = await setup.row(run.run_id)
    assert (final["status"], final["attempt"]) == ("success", 2)
    assert settled(setup.queues["a"], run.run_id) == [(new, "success")]
    assert old not in [t for _, t, _, ok in setup.queues["a"].finishes if ok]
    log = await whole_log(setup, run.run_id)
    assert log[-1].event == EndEvent(status="success")


async def test_runs_claimed_as_the_drain_begins_are_handed_back(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    fake_llm.reply(text=QUICK)
    a = setup.worker("a")
    setup.queues["a"].after_claim = a.stop_claiming  # the drain starts while claiming
    await a.start()
    run = await setup.new_run()
    await until(lambda: setup.queues["a"].claimed, "worker a to claim the run")

    async def handed_back() -> bool:
        return (await setup.row(run.run_id))["status"] == "pending"

    await until(handed_back, "the run to be handed back")
    back = await setup.row(run.run_id)
    assert (back["attempt"], back["lease_owner"]) == (0, None)  # not a failed attempt
    [(_, token)] = setup.queues["a"].claimed
    assert setup.queues["a"].hand_backs == [(run.run_id, token, "pending")]

    b = setup.worker("b")
    await b.start()
    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None and (ended.status, ended.attempt) == ("success", 1)


async def test_a_stop_right_after_a_run_starts_still_stops_it(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    """The stop arrives before the run's task ever ran (same loop iteration as its start)."""
    fake_llm.reply(text=SLOW, token_delay=0.05)
    a = setup.worker("a")
    await a.start()
    rt = setup.runtime
    assistant = await rt.assistants.create("alice", "a", CHATBOT, False)
    thread = await rt.threads.create("alice", "t", assistant.assistant_id)
    assert a.reserve()
    created = await rt.runs.create(
        NewRun(
            user_id="alice",
            thread_id=thread.thread_id,
            assistant_id=assistant.assistant_id,
            input=stored_input([HumanMessage("go")]),
            config={},
            multitask_strategy="reject",
            on_disconnect="continue",
            recursion_limit=25,
            checkpoint_id=None,
        ),
        claim_owner=a.owner,
        lease_seconds=LEASE,
    )
    run = created.run
    assert run.status == "running" and run.claim_token is not None
    a.adopt(Claim(run=run, token=run.claim_token, assistant_config=CHATBOT))
    assert a.stop_run(run.run_id, "cancel")

    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None
    assert (ended.status, ended.error, ended.attempt) == (
        "cancelled",
        "The run was cancelled",
        1,
    )
    log = await whole_log(setup, run.run_id)
    assert log[-1].event == EndEvent(status="cancelled")
    await until(lambda: not a.holds(run.run_id), "worker a to let go of the run")


# --- draining ---------------------------------------------------------------------------------


async def test_drain_hands_the_run_back_and_another_worker_completes_it(
    setup: Setup, fake_llm: FakeOpenAI
) -> None:
    fake_llm.reply(text=SLOW, token_delay=0.05)
    fake_llm.reply(text=QUICK)
    a = setup.worker("a")
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)

    await a.drain(seconds=0.1)
    assert not a.holds(run.run_id)
    [(_, token_a)] = setup.queues["a"].claimed
    assert setup.queues["a"].hand_backs == [(run.run_id, token_a, "pending")]
    assert setup.queues["a"].finishes == []
    back = await setup.row(run.run_id)
    assert (back["status"], back["attempt"], back["lease_owner"]) == ("pending", 0, None)

    b = setup.worker("b")
    await b.start()
    ended = await setup.service.wait_ended(run.run_id, WAIT)
    assert ended is not None and ended.status == "success"
    [(_, token_b)] = setup.queues["b"].claimed
    assert settled(setup.queues["b"], run.run_id) == [(token_b, "success")]
    final = await setup.row(run.run_id)
    assert (final["status"], final["attempt"]) == ("success", 1)

    log = await whole_log(setup, run.run_id)
    state = await setup.state(run)
    assert [(t, c) for t, _, c in state] == [("human", "go"), ("ai", QUICK)]
    assert fold(log) == state


async def test_a_stop_during_the_drain_wins(setup: Setup, fake_llm: FakeOpenAI) -> None:
    fake_llm.reply(text=SLOW, token_delay=0.05)
    a = setup.worker("a")
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)

    draining = asyncio.create_task(a.drain(seconds=5))
    await asyncio.sleep(0.05)
    stopped = await setup.service.stop(run)
    assert (stopped.status, stopped.error) == ("cancelled", "The run was cancelled")
    async with asyncio.timeout(WAIT):
        await draining
    [(_, token_a)] = setup.queues["a"].claimed
    assert settled(setup.queues["a"], run.run_id) == [(token_a, "cancelled")]
    assert setup.queues["a"].hand_backs == []

    log = await whole_log(setup, run.run_id)
    assert [e.event for e in log[-2:]] == [
        ErrorEvent(code="cancelled", message="The run was cancelled"),
        EndEvent(status="cancelled"),
    ]
    # Nobody runs it again.
    b = setup.worker("b")
    await b.start()
    await asyncio.sleep(0.3)
    assert setup.queues["b"].claimed == []
    assert (await setup.row(run.run_id))["status"] == "cancelled"


async def test_a_stop_racing_the_hand_back_wins(setup: Setup, fake_llm: FakeOpenAI) -> None:
    """The stop lands after the worker decided to hand the run back: still cancelled."""
    fake_llm.reply(text=SLOW, token_delay=0.05)
    a = setup.worker("a")
    await a.start()
    run = await setup.new_run()
    await until(lambda: a.holds(run.run_id), "worker a to claim the run")
    await streaming_started(setup, run.run_id)

    assert await setup.runtime.runs.request_stop(run.run_id, "cancel")
    await a.drain(seconds=0)  # hands back before the stop signal arrives
    [(_, token_a)] = setup.queues["a"].claimed
    assert setup.queues["a"].hand_backs == [(run.run_id, token_a, "cancelled")]
    final = await setup.row(run.run_id)
    assert (final["status"], final["error"]) == ("cancelled", "The run was cancelled")
    log = await whole_log(setup, run.run_id)
    assert log[-1].event == EndEvent(status="cancelled")


def test_slow_reply_is_long_enough() -> None:
    # The racing cases need the first attempt to outlive a heartbeat or two.
    assert len(tokenize(SLOW)) * 0.05 >= LEASE
