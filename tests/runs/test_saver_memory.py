"""Loom's saver remembers thread heads (``storage/checkpoints.py``): what it answers from
memory must be exactly what the stock saver reads from the database.

Every step of several kinds of thread (turns of a chatbot, tool calls with an approval
interrupt, edits by id, ``RemoveMessage``, a fork from an old checkpoint, snapshots every few
updates, another process moving the thread on) is checked twice: the replay history of the
head, and the thread's state, each through Loom's saver and through a stock
``AsyncPostgresSaver`` on the same database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
    messages_to_dict,
)
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import DeltaChannelHistory
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph.message import _messages_delta_reducer

from loom.agents.graphs import SINK_KEY
from loom.agents.registry import default_factory
from loom.agents.state import state_channels
from loom.db.migrate import prepare_schema
from loom.db.pool import open_pool
from loom.db.types import Pool
from loom.settings import Settings
from loom.storage.checkpoints import LoomSaver
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI, ToolCall

CHATBOT = {"configurable": {"type": "chatbot"}}
APPROVING_AGENT = {
    "configurable": {"type": "agent", "tools": ["Wikipedia"], "interrupt_before_action": True}
}


class _Quiet:
    async def text(self, message_id: str, delta: str) -> None:
        return None


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    settings = make_settings(database_url)
    opened = await open_pool(database_url, settings)
    async with opened.connection() as conn:
        await prepare_schema(conn, AsyncPostgresSaver(opened).setup)  # type: ignore[arg-type]
    try:
        yield opened
    finally:
        await opened.close()


def _settings(database_url: str, fake: FakeOpenAI, snapshot_every: int) -> Settings:
    return make_settings(database_url, fake, checkpoint_snapshot_frequency=snapshot_every)


def _config(thread: str, **more: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, SINK_KEY: _Quiet(), **more}}


def _dump(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return messages_to_dict(messages)


def _rebuilt(history: DeltaChannelHistory) -> list[dict[str, Any]]:
    """What a history replays to, through LangGraph's reducer (not Loom's)."""
    channel = DeltaChannel(_messages_delta_reducer).from_checkpoint(history.get("seed"))
    channel.replay_writes(history["writes"])
    return _dump(channel.get())


async def _agree(loom: LoomSaver, stock: AsyncPostgresSaver, graphs: Any, thread: str) -> None:
    """Loom's saver and the stock one agree on the head's history and the thread's state."""
    head = await stock.aget_tuple({"configurable": {"thread_id": thread}})
    assert head is not None
    config: RunnableConfig = {
        "configurable": {
            "thread_id": thread,
            "checkpoint_ns": "",
            "checkpoint_id": head.config["configurable"]["checkpoint_id"],
        }
    }
    if "messages" not in (head.checkpoint.get("channel_values") or {}):
        hits = loom.history_hits
        mine = await loom.aget_delta_channel_history(config=config, channels=["messages"])
        theirs = await stock.aget_delta_channel_history(config=config, channels=["messages"])
        assert mine.keys() == theirs.keys()
        for channel in theirs:
            # The same messages, rebuilt by LangGraph's own reducer from either history.
            assert _rebuilt(mine[channel]) == _rebuilt(theirs[channel])
            if loom.history_hits > hits:  # from memory: folded into its seed
                assert mine[channel]["writes"] == []
    loom_graph, stock_graph = graphs
    state_a = await loom_graph.aget_state({"configurable": {"thread_id": thread}})
    state_b = await stock_graph.aget_state({"configurable": {"thread_id": thread}})
    assert _dump(state_a.values["messages"]) == _dump(state_b.values["messages"])
    assert state_a.next == state_b.next


async def _savers(
    pool: Pool, settings: Settings, config: dict[str, Any], http: httpx2.AsyncClient
) -> tuple[LoomSaver, AsyncPostgresSaver, Any]:
    # Loom's saver and graphs as the server opens them: one set of state channels for both.
    channels = state_channels(settings.checkpoint_snapshot_frequency)
    loom = LoomSaver(pool, channels=channels)
    stock = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    loom_graph, _ = default_factory(settings, loom, http=http, channels=channels).graph(config)
    stock_graph, _ = default_factory(settings, stock, http=http).graph(config)
    return loom, stock, (loom_graph, stock_graph)


@pytest.mark.parametrize("snapshot_every", [1000, 3])
async def test_chatbot_turns_edits_removals_and_a_fork(
    pool: Pool,
    database_url: str,
    fake_llm: FakeOpenAI,
    provider_http: httpx2.AsyncClient,
    snapshot_every: int,
) -> None:
    settings = _settings(database_url, fake_llm, snapshot_every)
    loom, stock, graphs = await _savers(pool, settings, CHATBOT, provider_http)
    graph = graphs[0]
    thread = str(uuid.uuid4())
    fake_llm.set_default(text="A short answer.")
    for turn in range(12):
        human = HumanMessage(f"question {turn}", id=str(uuid.uuid4()))
        async for _ in graph.astream({"messages": [human]}, _config(thread), stream_mode="updates"):
            pass
        await _agree(loom, stock, graphs, thread)
        if turn == 4:  # an edit by id
            state = await graph.aget_state({"configurable": {"thread_id": thread}})
            first = state.values["messages"][0]
            edited = HumanMessage("question 0, edited", id=first.id)
            await graph.aupdate_state(_config(thread), {"messages": [edited]}, as_node="chatbot")
            await _agree(loom, stock, graphs, thread)
        if turn == 7:  # a removal
            state = await graph.aget_state({"configurable": {"thread_id": thread}})
            gone = state.values["messages"][1]
            await graph.aupdate_state(
                _config(thread), {"messages": [RemoveMessage(id=gone.id)]}, as_node="chatbot"
            )
            await _agree(loom, stock, graphs, thread)
    # a fork from an old checkpoint: the new branch becomes the head
    history = [s async for s in graph.aget_state_history({"configurable": {"thread_id": thread}})]
    old = history[len(history) // 2].config["configurable"]["checkpoint_id"]
    fork = HumanMessage("a different question", id=str(uuid.uuid4()))
    async for _ in graph.astream(
        {"messages": [fork]}, _config(thread, checkpoint_id=old), stream_mode="updates"
    ):
        pass
    await _agree(loom, stock, graphs, thread)
    for _ in range(3):
        async for _ in graph.astream(
            {"messages": [HumanMessage("and more", id=str(uuid.uuid4()))]},
            _config(thread),
            stream_mode="updates",
        ):
            pass
        await _agree(loom, stock, graphs, thread)


async def test_tool_calls_and_an_approval_interrupt(
    pool: Pool, database_url: str, fake_llm: FakeOpenAI, provider_http: httpx2.AsyncClient
) -> None:
    settings = _settings(database_url, fake_llm, 1000)
    loom, stock, graphs = await _savers(pool, settings, APPROVING_AGENT, provider_http)
    graph = graphs[0]
    thread = str(uuid.uuid4())
    for turn in range(3):
        fake_llm.reply(tool_calls=[ToolCall("wikipedia", {"query": f"q{turn}"}, id=f"c{turn}")])
        human = HumanMessage(f"look up {turn}", id=str(uuid.uuid4()))
        async for _ in graph.astream({"messages": [human]}, _config(thread), stream_mode="updates"):
            pass
        await _agree(loom, stock, graphs, thread)
        # the client rejects the call (a tool message), then the run continues
        rejected = ToolMessage(
            "The user rejected this tool call.", tool_call_id=f"c{turn}", id=str(uuid.uuid4())
        )
        await graph.aupdate_state(_config(thread), {"messages": [rejected]}, as_node="action")
        await _agree(loom, stock, graphs, thread)
        fake_llm.reply(text=f"Fine, no lookup for {turn}.")
        async for _ in graph.astream(None, _config(thread), stream_mode="updates"):
            pass
        await _agree(loom, stock, graphs, thread)


async def test_another_process_moving_the_thread_on_is_a_miss(
    pool: Pool, database_url: str, fake_llm: FakeOpenAI, provider_http: httpx2.AsyncClient
) -> None:
    settings = _settings(database_url, fake_llm, 1000)
    loom, stock, graphs = await _savers(pool, settings, CHATBOT, provider_http)
    # another process's saver, on the same database
    channels = state_channels(settings.checkpoint_snapshot_frequency)
    other = LoomSaver(pool, channels=channels)
    other_graph, _ = default_factory(settings, other, http=provider_http, channels=channels).graph(
        CHATBOT
    )
    thread = str(uuid.uuid4())
    fake_llm.set_default(text="Answer.")
    for turn in range(6):
        graph = graphs[0] if turn % 2 == 0 else other_graph
        human = HumanMessage(f"q{turn}", id=str(uuid.uuid4()))
        async for _ in graph.astream({"messages": [human]}, _config(thread), stream_mode="updates"):
            pass
        await _agree(loom, stock, graphs, thread)
    final = await graphs[0].aget_state({"configurable": {"thread_id": thread}})
    assert [m.content for m in final.values["messages"] if isinstance(m, AIMessage)] == [
        "Answer."
    ] * 6
