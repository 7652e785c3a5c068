"""One conversation, two protocols: ChatKit turns and native ``POST /runs/stream`` turns
alternate on one thread, and both sides list the same messages in the same order."""

from __future__ import annotations

from typing import Any

from chatkit.types import AssistantMessageItem, UserMessageItem

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.protocols.chatkit.helpers import (
    ChatKit,
    add_req,
    conversation,
    create_req,
    created_thread,
    deltas,
    native_conversation,
)
from tests.runs.helpers import messages, run_body
from tests.runs.sse_client import check_shape, stream_run


def _native_turn(client: Any, thread_id: str, text: str) -> None:
    stream = stream_run(client, run_body(thread_id, text))
    check_shape(stream)
    assert "error" not in stream.names


def test_alternating_turns_agree(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    native = loom.client("alice")
    ck = ChatKit(native)
    expected: list[tuple[str, str]] = []
    fake_llm.reply(text="ChatKit answer 1.")
    thread_id = created_thread(ck.stream(create_req("chatkit question 1")))
    expected += [("user", "chatkit question 1"), ("assistant", "ChatKit answer 1.")]
    for turn in range(2, 4):
        fake_llm.reply(text=f"Native answer {turn}.")
        _native_turn(native, thread_id, f"native question {turn}")
        expected += [("user", f"native question {turn}"), ("assistant", f"Native answer {turn}.")]
        fake_llm.reply(text=f"ChatKit answer {turn}.")
        events = ck.stream(add_req(thread_id, f"chatkit question {turn}"))
        assert "".join(deltas(events)) == f"ChatKit answer {turn}."
        expected += [("user", f"chatkit question {turn}"), ("assistant", f"ChatKit answer {turn}.")]
        # The model saw every earlier turn, from both sides.
        prompt = fake_llm.chat_requests[-1]["messages"]
        seen = [m["content"] for m in prompt if m["role"] in ("user", "assistant")]
        assert seen == [text for _, text in expected[:-1]]
    fake_llm.reply(text="Native last word.")
    _native_turn(native, thread_id, "native final")
    expected += [("user", "native final"), ("assistant", "Native last word.")]

    values = messages(native, thread_id)
    items = ck.all_items(thread_id)
    assert native_conversation(values) == expected
    assert conversation(items) == expected
    # Same ids on both sides: an item of a message is that message.
    shown = [i for i in items if isinstance(i, UserMessageItem | AssistantMessageItem)]
    assert [i.id for i in shown] == [m["id"] for m in values]
    # Reading twice gives the same items (ids and timestamps are stable).
    assert ck.all_items(thread_id) == items
    # get_by_id agrees, and the thread is the native thread.
    assert conversation(ck.thread(thread_id).items.data) == expected[:20]
    assert native.get(f"/threads/{thread_id}").json()["thread_id"] == thread_id


def test_native_edit_shows_in_chatkit(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    """Thread state is the truth: a message replaced natively reads back replaced."""
    native = loom.client("alice")
    ck = ChatKit(native)
    fake_llm.reply(text="Original answer.")
    thread_id = created_thread(ck.stream(create_req("question")))
    answer = messages(native, thread_id)[-1]
    edited = {**answer, "content": "Edited answer."}
    r = native.post(f"/threads/{thread_id}/state", json={"values": [edited]})
    assert r.status_code == 200, r.text
    assert conversation(ck.all_items(thread_id)) == [
        ("user", "question"),
        ("assistant", "Edited answer."),
    ]
