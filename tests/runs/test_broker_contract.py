"""The broker contract: one suite that :class:`LocalBroker` and :class:`RedisBroker` both pass.

Each case gets a ``Pair``: ``broker`` is the process that executes runs and publishes their
events, ``other`` another process sharing the backend. For the in-process broker there is
only one process, so ``other`` is the same broker; for Redis it is a second ``RedisBroker``
on its own client (connection pool), reading the same Redis database (a dedicated number,
flushed by this module only) under a key prefix unique to the test.

Cases only for Redis (the remote path, TTLs, serialization) follow the shared contract.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pytest
import redis.asyncio as redis

from loom.runs.broker import Broker, LocalBroker
from loom.runs.events import (
    EndEvent,
    Envelope,
    ErrorEvent,
    MessageDelta,
    MessageRemove,
    MessageUpsert,
    RunEvent,
    dump_batch,
    load_batch,
    partial_messages,
)
from loom.runs.redis_broker import RedisBroker, stream_key
from tests.runs.redis_db import redis_clients

REDIS_DB = 11
WAIT = 5.0  # upper bound on anything a case waits for (never reached when all is well)


@dataclass
class Pair:
    kind: str
    broker: Broker
    other: Broker


@pytest.fixture(scope="module")
async def clients() -> AsyncIterator[list[redis.Redis]]:
    async with redis_clients(REDIS_DB) as pair:
        yield pair


def _redis_pair(clients: list[redis.Redis], **options: Any) -> tuple[RedisBroker, RedisBroker]:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    return (
        RedisBroker(clients[0], prefix=prefix, **options),
        RedisBroker(clients[1], prefix=prefix, **options),
    )


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def pair(request: pytest.FixtureRequest, clients: list[redis.Redis]) -> AsyncIterator[Pair]:
    if request.param == "local":
        local = LocalBroker(keep_seconds=30)
        yield Pair("local", local, local)
        await local.aclose()
        return
    first, second = _redis_pair(clients)
    yield Pair("redis", first, second)
    await first.aclose()
    await second.aclose()


def run_id() -> str:
    return str(uuid.uuid4())


def script(n: int = 6, *, end: bool = True) -> list[RunEvent]:
    """A run's events: the input, an AI message streamed in ``n - 3`` deltas, its completion."""
    events: list[RunEvent] = [
        MessageUpsert(message={"type": "human", "id": "h1", "content": "hi"}),
        MessageUpsert(message={"type": "ai", "id": "a1", "content": ""}, streaming=True),
    ]
    events += [MessageDelta(id="a1", delta=f"w{i} ") for i in range(max(0, n - 3))]
    events.append(
        MessageUpsert(
            message={"type": "ai", "id": "a1", "content": "".join(f"w{i} " for i in range(n - 3))}
        )
    )
    if end:
        events.append(EndEvent(status="success"))
    return events


def numbered(events: Sequence[RunEvent], first: int = 1) -> list[tuple[int, RunEvent]]:
    return [(first + i, e) for i, e in enumerate(events)]


def pairs(envelopes: Sequence[Envelope]) -> list[tuple[int, RunEvent]]:
    return [(e.seq, e.event) for e in envelopes]


async def publish_all(broker: Broker, rid: str, events: Sequence[RunEvent]) -> list[int]:
    publisher = broker.publisher(rid)
    try:
        return [await publisher.publish(e) for e in events]
    finally:
        await publisher.close()


async def collect(
    broker: Broker, rid: str, after: int = 0, heartbeat: float | None = None
) -> list[Envelope]:
    """Everything a subscription yields until it ends (empty batches dropped)."""
    out: list[Envelope] = []
    async with asyncio.timeout(WAIT):
        async for batch in broker.subscribe(rid, after, heartbeat):
            out.extend(batch)
    return out


async def until(check: Any, what: str) -> None:
    """Poll ``check()`` (sync) until true, with a deadline."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


# --- the shared contract ----------------------------------------------------------------------


async def test_sequence_numbers_start_at_one_and_are_dense(pair: Pair) -> None:
    rid = run_id()
    events = script(8)
    publisher = pair.broker.publisher(rid)
    assert publisher.last_seq == 0
    seqs = [await publisher.publish(e) for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert publisher.last_seq == len(events)
    await publisher.close()
    assert pairs(await pair.broker.read(rid)) == numbered(events)


async def test_read_after_returns_exactly_the_later_events(pair: Pair) -> None:
    rid = run_id()
    events = script(7)
    await publish_all(pair.broker, rid, events)
    for reader in (pair.broker, pair.other):
        for after in range(len(events) + 2):
            got = pairs(await reader.read(rid, after))
            assert got == numbered(events)[after:], (reader, after)
    assert await pair.broker.read(run_id()) == []


async def test_read_sees_unflushed_events_of_this_process(pair: Pair) -> None:
    rid = run_id()
    publisher = pair.broker.publisher(rid)
    events = script(5, end=False)
    for e in events:
        await publisher.publish(e)
    # Without a flush: the publishing process reads its own events at once.
    assert pairs(await pair.broker.read(rid)) == numbered(events)
    assert pairs(await pair.broker.read(rid, 2)) == numbered(events)[2:]
    await publisher.close()


async def test_subscribe_before_the_log_exists_waits_for_it(pair: Pair) -> None:
    rid = run_id()
    events = script(6)
    early = [asyncio.create_task(collect(b, rid)) for b in (pair.broker, pair.other)]
    await asyncio.sleep(0.05)  # the subscriptions are waiting on a log nobody opened yet
    assert not any(t.done() for t in early)
    await publish_all(pair.broker, rid, events)
    for task in early:
        assert pairs(await task) == numbered(events)


async def test_late_subscriber_replays_from_the_start(pair: Pair) -> None:
    rid = run_id()
    events = script(6)
    await publish_all(pair.broker, rid, events)
    for follower in (pair.broker, pair.other):
        assert pairs(await collect(follower, rid)) == numbered(events)


async def test_subscriber_joining_mid_run_gets_the_past_then_the_rest(pair: Pair) -> None:
    rid = run_id()
    events = script(10)
    publisher = pair.broker.publisher(rid)
    for e in events[:4]:
        await publisher.publish(e)
    await publisher.flush()
    tasks = [asyncio.create_task(collect(b, rid)) for b in (pair.broker, pair.other)]
    await asyncio.sleep(0.02)
    for e in events[4:]:
        await publisher.publish(e)
        await asyncio.sleep(0)
    await publisher.close()
    for task in tasks:
        assert pairs(await task) == numbered(events)


async def test_resume_after_n_yields_exactly_the_later_events(pair: Pair) -> None:
    rid = run_id()
    events = script(30)
    publisher = pair.broker.publisher(rid)
    for e in events[:10]:
        await publisher.publish(e)
    await publisher.flush()
    positions = [0, 1, 3, 9, 10, 15, len(events) - 1, len(events)]
    tasks = {
        (name, after): asyncio.create_task(
            collect(b, rid, after) if after < len(events) else _first_batch(b, rid, after)
        )
        for name, b in (("broker", pair.broker), ("other", pair.other))
        for after in positions
    }
    for i, e in enumerate(events[10:]):
        await publisher.publish(e)
        if i % 5 == 0:
            await asyncio.sleep(0.01)
    await publisher.close()
    for (name, after), task in tasks.items():
        got = await task
        if after < len(events):
            assert pairs(got) == numbered(events)[after:], (name, after)
        else:
            # Resuming after the end: no event ever comes (the subscription ends, or idles).
            assert got == [], (name, after)


async def _first_batch(broker: Broker, rid: str, after: int) -> list[Envelope]:
    """The first batch, or nothing when the subscription ends without one."""
    async with asyncio.timeout(WAIT):
        async for batch in broker.subscribe(rid, after, heartbeat=0.3):
            return batch
    return []


async def test_subscription_ends_after_end_event(pair: Pair) -> None:
    rid = run_id()
    publisher = pair.broker.publisher(rid)
    events = script(4)
    followers = [asyncio.create_task(collect(b, rid)) for b in (pair.broker, pair.other)]
    for e in events:
        await publisher.publish(e)
    # The subscriptions end with the end event, before the publisher even lets go.
    for task in followers:
        got = await task
        assert isinstance(got[-1].event, EndEvent)
        assert pairs(got) == numbered(events)
    await publisher.close()


async def test_idle_subscription_yields_heartbeats(pair: Pair) -> None:
    for follower in (pair.broker, pair.other):
        rid = run_id()
        publisher = pair.broker.publisher(rid)
        await publisher.publish(script(3)[0])
        await publisher.flush()
        loop = asyncio.get_running_loop()
        started = loop.time()
        subscription = follower.subscribe(rid, 1, heartbeat=0.1)
        async with asyncio.timeout(WAIT):
            assert await anext(subscription) == []
            assert await anext(subscription) == []
            # an empty batch per idle heartbeat interval, not sooner
            assert loop.time() - started >= 0.15
            await publisher.publish(EndEvent(status="success"))
            rest = [e async for batch in subscription for e in batch]
        assert pairs(rest) == [(2, EndEvent(status="success"))]
        await publisher.close()


async def test_heartbeat_before_the_log_exists(pair: Pair) -> None:
    rid = run_id()
    for follower in (pair.broker, pair.other):
        subscription = follower.subscribe(rid, 0, heartbeat=0.05)
        async with asyncio.timeout(WAIT):
            assert await anext(subscription) == []
        await subscription.aclose()  # type: ignore[attr-defined]
    assert not await pair.broker.exists(rid)


async def test_later_attempt_continues_the_numbering(pair: Pair) -> None:
    """The first attempt's publisher lets go without ``end`` (its worker lost the run); a later
    attempt, in this process or another, continues the same log."""
    for second_broker in (pair.broker, pair.other):
        rid = run_id()
        first = script(5, end=False)
        follower = asyncio.create_task(collect(pair.broker, rid))
        remote = asyncio.create_task(collect(pair.other, rid))
        assert await publish_all(pair.broker, rid, first) == [1, 2, 3, 4, 5]
        second: list[RunEvent] = [MessageRemove(id="a1"), *script(4)]
        seqs = await publish_all(second_broker, rid, second)
        assert seqs == list(range(6, 6 + len(second)))
        expected = numbered([*first, *second])
        assert pairs(await follower) == expected
        assert pairs(await remote) == expected
        assert pairs(await pair.broker.read(rid)) == expected
        assert pairs(await pair.other.read(rid)) == expected
        assert pairs(await collect(pair.other, rid, 3)) == expected[3:]


async def test_a_superseded_publisher_publishes_nothing_more(pair: Pair) -> None:
    """Two attempts of a run overlap in one process (the first lost its lease and has not
    noticed yet): once the newer publisher opened the log, the older one's events are
    dropped, so they neither interleave with the new attempt's nor follow its end."""
    rid = run_id()
    follower = asyncio.create_task(collect(pair.broker, rid))
    remote = asyncio.create_task(collect(pair.other, rid))
    stale = pair.broker.publisher(rid)
    first = script(4, end=False)
    for e in first:
        await stale.publish(e)
    fresh = pair.broker.publisher(rid)
    assert await stale.publish(MessageDelta(id="a1", delta="stale")) == 0
    second: list[RunEvent] = [MessageRemove(id="a1"), *script(4, end=False)]
    for i, e in enumerate(second):
        assert await fresh.publish(e) == len(first) + 1 + i
        assert await stale.publish(MessageDelta(id="a1", delta="stale")) == 0
    await stale.close()  # the stale attempt lets go (no end): the run goes on
    assert await fresh.publish(EndEvent()) == len(first) + len(second) + 1
    assert await stale.publish(EndEvent(status="error")) == 0
    await fresh.close()
    expected = numbered([*first, *second, EndEvent()])
    assert pairs(await follower) == expected
    assert pairs(await remote) == expected
    assert pairs(await pair.other.read(rid)) == expected


async def test_flush_makes_everything_readable_elsewhere(pair: Pair) -> None:
    rid = run_id()
    publisher = pair.broker.publisher(rid)
    events = script(50, end=False)
    for e in events:
        await publisher.publish(e)
    await publisher.flush()
    assert pairs(await pair.other.read(rid)) == numbered(events)
    assert await pair.other.exists(rid)
    await publisher.publish(EndEvent())
    await publisher.flush()
    assert pairs(await pair.other.read(rid, len(events))) == [(len(events) + 1, EndEvent())]
    await publisher.close()


async def test_a_burst_arrives_in_order_and_complete(pair: Pair) -> None:
    rid = run_id()
    n = 5000
    events: list[RunEvent] = [
        MessageUpsert(message={"type": "ai", "id": "a", "content": ""}, streaming=True),
        *(MessageDelta(id="a", delta=str(i)) for i in range(n)),
        EndEvent(),
    ]
    followers = [asyncio.create_task(collect(b, rid)) for b in (pair.broker, pair.other)]
    await asyncio.sleep(0.02)
    await publish_all(pair.broker, rid, events)
    for task in followers:
        got = await task
        assert [e.seq for e in got] == list(range(1, len(events) + 1))
        assert pairs(got) == numbered(events)
    assert pairs(await pair.other.read(rid)) == numbered(events)


async def test_exists(pair: Pair) -> None:
    rid = run_id()
    assert not await pair.broker.exists(rid)
    assert not await pair.other.exists(rid)
    publisher = pair.broker.publisher(rid)
    await publisher.publish(script(3)[0])
    assert await pair.broker.exists(rid)
    await publisher.flush()
    assert await pair.other.exists(rid)
    await publisher.publish(EndEvent())
    await publisher.close()
    assert await pair.broker.exists(rid)
    assert await pair.other.exists(rid)
    # Following a run that has no log yet does not create one.
    missing = run_id()
    subscription = pair.broker.subscribe(missing, 0, heartbeat=0.02)
    assert await anext(subscription) == []
    assert not await pair.broker.exists(missing)
    await subscription.aclose()  # type: ignore[attr-defined]
    assert not await pair.broker.exists(missing)


async def test_partial_messages_of_a_log(pair: Pair) -> None:
    rid = run_id()
    events: list[RunEvent] = [
        MessageUpsert(message={"type": "human", "id": "h", "content": "hi"}),
        MessageUpsert(message={"type": "ai", "id": "a", "content": ""}, streaming=True),
        MessageDelta(id="a", delta="partly"),
        MessageUpsert(message={"type": "ai", "id": "b", "content": ""}, streaming=True),
        MessageDelta(id="b", delta="done"),
        MessageUpsert(message={"type": "ai", "id": "b", "content": "done"}),  # completed
        MessageUpsert(message={"type": "ai", "id": "c", "content": ""}, streaming=True),
        MessageRemove(id="c"),  # removed by a later attempt
        MessageUpsert(message={"type": "ai", "id": "d", "content": ""}, streaming=True),
        MessageUpsert(message={"type": "tool", "id": "t", "content": "42"}),
        ErrorEvent(code="run_lost", message="lost"),
    ]
    await publish_all(pair.broker, rid, events)
    for reader in (pair.broker, pair.other):
        log = await reader.read(rid)
        assert partial_messages(log) == ["a", "d"]
        assert partial_messages(log[:2]) == ["a"]
        assert partial_messages(log[:6]) == ["a"]
        assert partial_messages(log[:7]) == ["a", "c"]
    assert partial_messages([]) == []


# --- Redis only -------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_remote_subscriber_follows_a_run_of_another_process(
    clients: list[redis.Redis],
) -> None:
    executing, serving = _redis_pair(clients, flush_interval=0.01)
    rid = run_id()
    events = script(40)
    follower = asyncio.create_task(collect(serving, rid, heartbeat=1.0))
    await asyncio.sleep(0.02)
    publisher = executing.publisher(rid)
    for i, e in enumerate(events):
        await publisher.publish(e)
        if i % 7 == 0:
            await asyncio.sleep(0.015)  # several XADD batches, read by several XREADs
    got = await follower
    assert pairs(got) == numbered(events)
    await publisher.close()
    # The serving process never had the log in memory: it came from the stream.
    assert serving.local.get(rid) is None


@pytest.mark.redis
async def test_redis_stream_expires_after_the_end(clients: list[redis.Redis]) -> None:
    broker, _ = _redis_pair(clients, ttl_after_end=7, ttl_idle=1000)
    rid = run_id()
    key = stream_key(broker.prefix, rid)
    publisher = broker.publisher(rid)
    for e in script(4, end=False):
        await publisher.publish(e)
    await publisher.flush()
    assert 900 < await clients[0].ttl(key) <= 1000
    await publisher.publish(EndEvent())
    await publisher.close()
    assert 0 < await clients[0].ttl(key) <= 7


@pytest.mark.redis
async def test_redis_events_survive_serialization_exactly(clients: list[redis.Redis]) -> None:
    broker, other = _redis_pair(clients)
    rid = run_id()
    events: list[RunEvent] = [
        MessageUpsert(
            message={
                "type": "human",
                "id": "h",
                "content": [{"type": "text", "text": 'Grüße 東京 🚀 \n\t"quoted" \\ back'}],
                "additional_kwargs": {},
                "name": None,
            }
        ),
        MessageUpsert(
            message={
                "type": "ai",
                "id": "a",
                "content": "",
                "tool_calls": [
                    {"name": "search", "args": {"q": "x", "n": 3, "f": 1.5, "b": True}, "id": "c1"}
                ],
                "response_metadata": {"nested": {"list": [1, None, "x"]}},
            },
            streaming=True,
        ),
        MessageDelta(id="a", delta="event: end\n\ndata: {}\n\n"),
        MessageRemove(id="a"),
        ErrorEvent(code="cancelled", message="The run was cancelled"),
        EndEvent(status="cancelled"),
    ]
    envelopes = [Envelope(seq=i + 1, event=e) for i, e in enumerate(events)]
    # The codec on its own...
    decoded = load_batch(dump_batch(envelopes))
    assert decoded == envelopes
    assert [type(e.event) for e in decoded] == [type(e) for e in events]
    assert [asdict(e.event) for e in decoded] == [asdict(e) for e in events]
    # ...and through Redis to another process, in one batch or several.
    await publish_all(broker, rid, events)
    for got in (await other.read(rid), await collect(other, rid)):
        assert got == envelopes
        assert [asdict(e.event) for e in got] == [asdict(e) for e in events]


@pytest.mark.redis
async def test_redis_later_attempt_in_another_process_serves_the_whole_log(
    clients: list[redis.Redis],
) -> None:
    """A run moves to a worker in another process: subscribers there, who join while the
    new attempt publishes, still get the first attempt's events (from the stream)."""
    first_process, second_process = _redis_pair(clients)
    rid = run_id()
    first = script(5, end=False)
    await publish_all(first_process, rid, first)
    publisher = second_process.publisher(rid)
    second: list[RunEvent] = [MessageRemove(id="a1"), *script(5, end=False)]
    for e in second:
        await publisher.publish(e)
    expected = numbered([*first, *second])
    assert pairs(await second_process.read(rid)) == expected
    followers = [asyncio.create_task(collect(second_process, rid, after)) for after in (0, 3, 5, 7)]
    await asyncio.sleep(0.02)
    await publisher.publish(EndEvent())
    await publisher.close()
    expected.append((len(expected) + 1, EndEvent()))
    for after, task in zip((0, 3, 5, 7), followers, strict=True):
        assert pairs(await task) == expected[after:], after


@pytest.mark.redis
async def test_redis_a_stale_publisher_in_another_process_is_fenced(
    clients: list[redis.Redis],
) -> None:
    old_process, new_process = _redis_pair(clients)
    rid = run_id()
    stale = old_process.publisher(rid)
    first = script(3, end=False)
    for e in first:
        await stale.publish(e)
    await stale.flush()
    fresh = new_process.publisher(rid)
    second: list[RunEvent] = [MessageRemove(id="a1"), *script(4)]
    await fresh.publish(second[0])  # the new attempt has started (numbering from the log)
    for _ in range(3):  # the old one has not noticed yet, and writes on
        await stale.publish(MessageDelta(id="a1", delta="stale"))
    await stale.close()
    for e in second[1:]:
        await fresh.publish(e)
    await fresh.close()
    assert pairs(await collect(old_process, rid)) == numbered([*first, *second])


async def test_local_finished_logs_are_kept_serialised_and_bounded() -> None:
    """A finished, idle log is kept serialised (and replays exactly); finished logs taken
    together stay within their bound, the oldest forgotten first."""
    from loom.runs.broker import LocalBroker

    broker = LocalBroker(keep_seconds=600)
    broker._logs._max_frozen_bytes = 20_000
    events = script(30)
    first = run_id()
    publisher = broker.publisher(first)
    for e in events:
        await publisher.publish(e)
    await publisher.close()
    log = broker._logs.get(first)
    assert log is not None and log.frozen is not None and log.events == []
    assert pairs(await broker.read(first)) == numbered(events)
    assert pairs(await collect(broker, first)) == numbered(events)
    for _ in range(40):
        rid = run_id()
        other = broker.publisher(rid)
        for e in events:
            await other.publish(e)
        await other.close()
    assert broker._logs._frozen_bytes <= 20_000
    assert not await broker.exists(first)  # the oldest went first
