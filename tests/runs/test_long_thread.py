"""A long thread on ``DeltaChannel`` (DESIGN.md, "Checkpoint storage").

Every historical checkpoint must replay to exactly the messages written by then; edits by id
and ``RemoveMessage`` must behave; and the checkpoint bytes a turn adds must stay flat (a
quadratic store re-saves the whole message list every turn).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import psycopg
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from loom.agents.graphs import CompiledGraph
from loom.agents.registry import default_factory
from loom.agents.state import state_channels
from loom.db.pool import open_pool
from loom.storage.checkpoints import LoomSaver
from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import history, messages, new_thread, run_body, state
from tests.runs.sse_client import check_shape, stream_run

TURNS = 60
MEASURE_AT = 20
CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _answer(turn: int) -> str:
    return f"Answer {turn}: " + " ".join(f"w{turn}x{i}" for i in range(12)) + "."


def _checkpoint_bytes(database_url: str, thread_id: str) -> int:
    total = 0
    with psycopg.connect(database_url) as conn:
        for table in CHECKPOINT_TABLES:
            row = conn.execute(
                f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t WHERE thread_id = %s",
                (thread_id,),
            ).fetchone()
            assert row is not None
            total += int(row[0])
    return total


def _lengths(turns: int) -> list[int]:
    """Message counts of a chatbot thread's checkpoints, oldest first: per turn the input
    checkpoint (state before the turn), after the human message, after the answer."""
    out: list[int] = []
    for turn in range(1, turns + 1):
        out += [2 * (turn - 1), 2 * turn - 1, 2 * turn]
    return out


# --- through the API, with the server's default snapshot frequency ----------------------------


@pytest.fixture(scope="module")
def long_thread(
    loom: LoomServer, fake_llm: FakeOpenAI, database_url: str
) -> Iterator[dict[str, Any]]:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    written: list[dict[str, Any]] = []  # every message, as the streams delivered it
    run_ids: list[str] = []
    sizes: dict[int, int] = {}
    fake_llm.reset()
    for turn in range(1, TURNS + 1):
        fake_llm.reply(text=_answer(turn))
        stream = stream_run(client, run_body(thread_id, f"Question {turn}?"), fmt="compact")
        check_shape(stream)
        assert "error" not in stream.names, stream.errors
        finished = [p for event in stream.data for p in event if "type" in p]
        human, ai = finished[0], finished[-1]
        assert (human["content"], ai["content"]) == (f"Question {turn}?", _answer(turn))
        written += [human, ai]
        run_ids.append(stream.run_id)
        if turn in (MEASURE_AT, TURNS):
            sizes[turn] = _checkpoint_bytes(database_url, thread_id)
    fake_llm.reset()
    yield {"thread_id": thread_id, "written": written, "run_ids": run_ids, "sizes": sizes}


def test_state_is_everything_written(loom: LoomServer, long_thread: dict[str, Any]) -> None:
    client = loom.client("alice")
    assert messages(client, long_thread["thread_id"]) == long_thread["written"]
    assert state(client, long_thread["thread_id"])["next"] == []


def test_whole_history_replays_exactly(loom: LoomServer, long_thread: dict[str, Any]) -> None:
    client = loom.client("alice")
    written = long_thread["written"]
    pages = history(client, long_thread["thread_id"], limit=40)  # several pages, with `before`
    assert len(pages) == 3 * TURNS
    oldest_first = pages[::-1]
    assert [len(h["values"]) for h in oldest_first] == _lengths(TURNS)
    for checkpoint in oldest_first:
        assert checkpoint["values"] == written[: len(checkpoint["values"])]
    # each checkpoint belongs to the run that wrote it, and parents chain back to the first
    for i, checkpoint in enumerate(oldest_first):
        assert checkpoint["metadata"]["run_id"] == long_thread["run_ids"][i // 3]
        parent = checkpoint["parent"]
        if i == 0:
            assert parent is None
        else:
            previous = oldest_first[i - 1]["checkpoint_id"]
            assert parent["configurable"]["checkpoint_id"] == previous
    assert len({h["checkpoint_id"] for h in pages}) == len(pages)


def test_checkpoint_bytes_per_turn_stay_flat(long_thread: dict[str, Any]) -> None:
    sizes = long_thread["sizes"]
    first = sizes[MEASURE_AT] / MEASURE_AT
    second = (sizes[TURNS] - sizes[MEASURE_AT]) / (TURNS - MEASURE_AT)
    # Linear storage: the later turns cost what the early ones did. Re-storing the whole list
    # every checkpoint (add_messages) makes this ratio about 4.
    assert second <= 1.5 * first, (first, second, sizes)
    assert second > 0


# --- the compiled graph directly, with snapshots every few updates ----------------------------


@pytest.fixture(scope="module", params=["stock saver", "Loom's saver"])
async def graph(
    request: pytest.FixtureRequest,
    database_url: str,
    fake_llm: FakeOpenAI,
    provider_http: httpx2.AsyncClient,
) -> AsyncIterator[CompiledGraph]:
    """Loom's graph on the stock saver (what the database holds, replayed by LangGraph), and
    on Loom's own (its memory folding histories through the same channels)."""
    settings = make_settings(database_url, fake_llm, checkpoint_snapshot_frequency=5)
    pool = await open_pool(database_url, settings)
    try:
        channels = state_channels(settings.checkpoint_snapshot_frequency)
        saver = (
            AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            if request.param == "stock saver"
            else LoomSaver(pool, channels=channels)
        )
        await saver.setup()
        factory = default_factory(settings, saver, http=provider_http, channels=channels)
        compiled, _ = factory.graph({"configurable": {"type": "chatbot"}})
        yield compiled
    finally:
        await pool.close()


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


async def _turns(
    graph: CompiledGraph, fake: FakeOpenAI, thread_id: str, turns: range
) -> list[BaseMessage]:
    for turn in turns:
        fake.reply(text=_answer(turn))
        human = HumanMessage(content=f"Question {turn}?", id=f"h{turn}")
        await graph.ainvoke({"messages": [human]}, _config(thread_id))
    snapshot = await graph.aget_state(_config(thread_id))
    return list(snapshot.values["messages"])


def _brief(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


async def test_replay_across_snapshots(graph: CompiledGraph, fake_llm: FakeOpenAI) -> None:
    thread_id = str(uuid.uuid4())
    final = await _turns(graph, fake_llm, thread_id, range(1, 31))
    assert _brief(final) == [
        pair
        for turn in range(1, 31)
        for pair in (("human", f"Question {turn}?"), ("ai", _answer(turn)))
    ]
    snapshots = [s async for s in graph.aget_state_history(_config(thread_id))][::-1]
    # full snapshots were taken along the way (their metadata has no delta counters), so
    # replay starts from a snapshot for most checkpoints
    taken = [s for s in snapshots if "counters_since_delta_snapshot" not in (s.metadata or {})]
    assert len(taken) >= 10
    assert [len(s.values.get("messages", [])) for s in snapshots] == _lengths(30)
    for snapshot in snapshots:
        got = list(snapshot.values.get("messages", []))
        assert got == final[: len(got)]
    # every historical checkpoint read on its own (not while walking) rebuilds the same
    for snapshot in snapshots[::7]:
        alone = await graph.aget_state(snapshot.config)
        assert alone.values == snapshot.values


async def test_edit_and_remove_by_id(graph: CompiledGraph, fake_llm: FakeOpenAI) -> None:
    thread_id = str(uuid.uuid4())
    config = _config(thread_id)
    original = await _turns(graph, fake_llm, thread_id, range(1, 13))
    target = original[5]  # the third answer
    assert isinstance(target, AIMessage) and target.id

    # edit by id: same place, new content
    await graph.aupdate_state(
        config, {"messages": [AIMessage(content="Edited answer.", id=target.id)]}, as_node="chatbot"
    )
    edited = list((await graph.aget_state(config)).values["messages"])
    assert [m.id for m in edited] == [m.id for m in original]
    assert edited[5].content == "Edited answer."
    assert edited[:5] == original[:5] and edited[6:] == original[6:]

    # remove by id
    removed_ids = {original[2].id, original[3].id}
    await graph.aupdate_state(
        config,
        {"messages": [RemoveMessage(id=str(i)) for i in removed_ids]},
        as_node="chatbot",
    )
    after_remove = list((await graph.aget_state(config)).values["messages"])
    assert [m.id for m in after_remove] == [m.id for m in edited if m.id not in removed_ids]
    assert after_remove[3].content == "Edited answer."

    # the next turn's model call sees the edited, shortened conversation
    reply = fake_llm.reply(text="Carrying on.")
    await graph.ainvoke({"messages": [HumanMessage(content="Next?", id="h-next")]}, config)
    [request] = reply.requests
    sent = [(m["role"], m["content"]) for m in request["messages"][1:]]
    expected = [("user" if m.type == "human" else "assistant", m.content) for m in after_remove] + [
        ("user", "Next?")
    ]
    assert sent == expected
    final = list((await graph.aget_state(config)).values["messages"])
    assert final[:-2] == after_remove
    assert _brief(final[-2:]) == [("human", "Next?"), ("ai", "Carrying on.")]

    # history still replays: before the edit, the original; after it, the edited list
    snapshots = [s async for s in graph.aget_state_history(config)][::-1]
    contents = [list(s.values.get("messages", [])) for s in snapshots]
    assert original in contents
    assert edited in contents
    assert after_remove in contents
    assert contents[-1] == final
    n_original = contents.index(original)
    for got in contents[: n_original + 1]:
        assert got == original[: len(got)]


async def test_fork_from_an_old_checkpoint(graph: CompiledGraph, fake_llm: FakeOpenAI) -> None:
    thread_id = str(uuid.uuid4())
    config = _config(thread_id)
    original = await _turns(graph, fake_llm, thread_id, range(1, 9))
    snapshots = [s async for s in graph.aget_state_history(config)]
    old = next(s for s in snapshots if len(s.values.get("messages", [])) == 6 and not s.next)
    fake_llm.reply(text="A different fourth answer.")
    await graph.ainvoke(
        {"messages": [HumanMessage(content="Other question?", id="fork-h")]}, old.config
    )
    forked = list((await graph.aget_state(config)).values["messages"])
    assert forked[:6] == original[:6]
    assert _brief(forked[6:]) == [
        ("human", "Other question?"),
        ("ai", "A different fourth answer."),
    ]
    # the original branch is intact
    tip = next(s for s in snapshots if len(s.values.get("messages", [])) == 16)
    assert list((await graph.aget_state(tip.config)).values["messages"]) == original
