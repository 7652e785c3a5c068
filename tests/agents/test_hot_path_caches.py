"""The hot path's memories give exactly what they replace.

:class:`~loom.agents.state.MessagesReducer` against LangGraph's ``_messages_delta_reducer``
over random runs of updates (new messages, edits by id, removals, dict messages, batches),
and :class:`~loom.agents.models._MessageDicts` prompts against converting every message.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)
from langchain_openai.chat_models.base import _convert_message_to_dict
from langgraph.graph.message import _messages_delta_reducer

from loom.agents.models import _MessageDicts
from loom.agents.state import MessagesReducer


def _one(rng: random.Random, ids: list[str]) -> Any:
    kind = rng.random()
    if ids and kind < 0.15:  # an edit by id
        return AIMessage(f"edited {rng.random()}", id=rng.choice(ids))
    if ids and kind < 0.25:  # a removal
        return RemoveMessage(id=rng.choice(ids))
    if kind < 0.3:  # a message as a dict (what HTTP input looks like)
        new = str(uuid.uuid4())
        ids.append(new)
        return {"type": "human", "content": f"dict {new}", "id": new}
    new = str(uuid.uuid4())
    ids.append(new)
    cls = HumanMessage if kind < 0.65 else AIMessage
    return cls(f"text {new}", id=new)


def _writes(rng: random.Random, ids: list[str]) -> list[Any]:
    """One update: a few writes, each a message or a list of them."""
    out: list[Any] = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            out.append([_one(rng, ids) for _ in range(rng.randint(1, 4))])
        else:
            out.append(_one(rng, ids))
    return out


def _dump(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return messages_to_dict(messages)


@pytest.mark.parametrize("seed", range(25))
def test_the_reducer_matches_langgraphs(seed: int) -> None:
    rng = random.Random(seed)
    reducer = MessagesReducer(size=rng.choice([1, 4, 256]))
    ids: list[str] = []
    ours: list[Any] = []
    theirs: list[Any] = []
    every: list[list[Any]] = []
    for _ in range(60):
        writes = _writes(rng, ids)
        every.append(writes)
        ours = reducer.reduce(ours, writes)
        theirs = _messages_delta_reducer(theirs, writes)
        assert _dump(ours) == _dump(theirs)
    # Batching invariance (what DeltaChannel requires): all updates at once, the same.
    flat = [w for writes in every for w in writes]
    assert _dump(MessagesReducer().reduce([], flat)) == _dump(theirs)


def test_the_reducer_never_changes_the_list_it_was_given() -> None:
    reducer = MessagesReducer()
    first = reducer.reduce([], [[HumanMessage("a", id="1"), AIMessage("b", id="2")]])
    kept = list(first)
    second = reducer.reduce(first, [AIMessage("b, edited", id="2"), HumanMessage("c", id="3")])
    assert first == kept
    assert [m.content for m in second] == ["a", "b, edited", "c"]


def _thread(turns: int) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for turn in range(turns):
        out.append(HumanMessage(f"question {turn}", id=f"h{turn}"))
        out.append(AIMessage(f"answer {turn}", id=f"a{turn}"))
    return out


def _plain(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [_convert_message_to_dict(m) for m in messages]


def test_prompts_match_converting_every_message() -> None:
    dicts = _MessageDicts()
    thread = _thread(5)
    cases: list[list[BaseMessage]] = [
        [SystemMessage("Be brief."), *thread],  # first sight
        [SystemMessage("Be brief."), *thread, HumanMessage("next", id="n")],  # one more
        # the last message back as a stored copy (another object), and one more
        [
            SystemMessage("Be brief."),
            *thread,
            HumanMessage("next", id="n"),
            AIMessage("reply", id="r"),
        ],
        [SystemMessage("Be brief."), *thread[:4]],  # a shorter prompt (an edit, a branch)
        # an edited message in the middle: another object in the same place
        [SystemMessage("Be brief."), *thread[:3], AIMessage("changed", id="a1"), *thread[4:]],
        thread,  # no system message
        [SystemMessage("Only this.")],
        [],
    ]
    for prompt in cases:
        assert dicts.prompt(prompt) == _plain(prompt)
    with_tool = [
        *thread,
        AIMessage("", id="c", tool_calls=[{"name": "f", "args": {"q": 1}, "id": "call1"}]),
        ToolMessage("found", tool_call_id="call1", id="t"),
    ]
    assert dicts.prompt(with_tool) == _plain(with_tool)


def test_a_prompts_new_system_message_is_not_remembered() -> None:
    dicts = _MessageDicts()
    thread = _thread(2)
    for turn in range(5):
        prompt = [SystemMessage("Be brief."), *thread, HumanMessage(f"q{turn}", id=f"q{turn}")]
        assert dicts.prompt(prompt) == _plain(prompt)
    # the thread's messages and each turn's question; none of the five system messages
    assert len(dicts._entries) == len(thread) + 5
