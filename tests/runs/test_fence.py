"""Checkpoint writes under a revoked claim are refused (a worker that lost a run's lease)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from loom.agents.registry import default_factory
from loom.db.migrate import prepare_schema
from loom.db.pool import open_pool
from loom.runs.fence import CLAIM_KEY, ClaimFence, LeaseLost
from loom.storage.checkpoints import LoomSaver
from tests.conftest import make_settings


async def test_a_revoked_claim_cannot_write_checkpoints(database_url: str) -> None:
    settings = make_settings(database_url)
    pool = await open_pool(database_url, settings)
    try:
        fence = ClaimFence()
        saver = LoomSaver(pool, fence=fence)
        async with pool.connection() as conn:
            await prepare_schema(conn, saver.setup)
        graph, _ = default_factory(settings, saver).graph({"configurable": {"type": "chatbot"}})
        thread = str(uuid.uuid4())
        held, lost = str(uuid.uuid4()), str(uuid.uuid4())

        def config(token: str) -> Any:
            return {"configurable": {"thread_id": thread, CLAIM_KEY: token}}

        await graph.aupdate_state(
            config(held), {"messages": [HumanMessage("hi", id="h1")]}, as_node="chatbot"
        )
        fence.revoke(lost)
        with pytest.raises(LeaseLost):
            await graph.aupdate_state(
                config(lost), {"messages": [AIMessage("stale", id="a1")]}, as_node="chatbot"
            )
        state = await graph.aget_state({"configurable": {"thread_id": thread}})
        assert [m.content for m in state.values["messages"]] == ["hi"]
        # the claim key never reaches checkpoint metadata
        assert CLAIM_KEY not in (state.metadata or {})
        fence.forget(lost)
        await graph.aupdate_state(
            config(lost), {"messages": [AIMessage("fine", id="a2")]}, as_node="chatbot"
        )
    finally:
        await pool.close()
