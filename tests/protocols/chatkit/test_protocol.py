"""``POST /chatkit`` over HTTP: every non-approval operation, event order, pagination, errors,
isolation. Request bodies are ``chatkit.types`` models; every streamed line is parsed with
``ThreadStreamEvent``; streamed text is compared with what the fake model sent."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from chatkit.types import (
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageItem,
    ErrorEvent,
    ItemFeedbackParams,
    ItemsFeedbackReq,
    ItemsListParams,
    ItemsListReq,
    StreamOptionsEvent,
    ThreadCreatedEvent,
    ThreadDeleteParams,
    ThreadGetByIdParams,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadListParams,
    ThreadRetryAfterItemParams,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadsUpdateReq,
    ThreadUpdatedEvent,
    ThreadUpdateParams,
    UserMessageItem,
)

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, tokenize
from tests.protocols.chatkit.helpers import (
    THREAD,
    THREADS,
    ChatKit,
    add_req,
    assistant_texts,
    conversation,
    create_req,
    created_thread,
    deltas,
    native_conversation,
)
from tests.runs.helpers import create_assistant, messages

TEXTS = {
    "plain": "Hello from Loom, nice to meet you.",
    "unicode": "Grüße aus Köln — 東京タワー 🚀 naïve café",
    "markdown": "# Title\n\n- item `one`\n- item two\n\n```python\nprint('hi')\n```",
    "sse-lookalike": 'data: {"type": "error"}\n\nevent: end\n\nstill the same message',
}


def _kinds(events: list[Any]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, ThreadItemUpdatedEvent):
            out.append(e.update.type)
        elif isinstance(e, ThreadItemAddedEvent | ThreadItemDoneEvent):
            out.append(f"{e.type}:{e.item.type}")
        else:
            out.append(e.type)
    return out


@pytest.mark.parametrize("name", list(TEXTS))
def test_create_streams_in_protocol_order(
    loom: LoomServer, fake_llm: FakeOpenAI, name: str
) -> None:
    text = TEXTS[name]
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text=text)
    events = ck.stream(create_req("say it"))
    tokens = tokenize(text)
    assert _kinds(events) == [
        "thread.created",
        "thread.item.done:user_message",
        "stream_options",
        "thread.item.added:assistant_message",
        "thread.updated",  # the thread got its title from the first message
        "assistant_message.content_part.added",
        *["assistant_message.content_part.text_delta"] * len(tokens),
        "assistant_message.content_part.done",
        "thread.item.done:assistant_message",
    ]
    thread_id = created_thread(events)
    assert deltas(events) == tokens
    assert isinstance(events[2], StreamOptionsEvent) and events[2].stream_options.allow_cancel
    added = events[3]
    assert isinstance(added, ThreadItemAddedEvent) and isinstance(added.item, AssistantMessageItem)
    assert added.item.content == []
    part = events[5]
    assert isinstance(part, ThreadItemUpdatedEvent)
    assert isinstance(part.update, AssistantMessageContentPartAdded)
    done_part = events[-2]
    assert isinstance(done_part, ThreadItemUpdatedEvent)
    assert isinstance(done_part.update, AssistantMessageContentPartDone)
    assert done_part.update.content.text == text
    done = events[-1]
    assert isinstance(done, ThreadItemDoneEvent) and isinstance(done.item, AssistantMessageItem)
    assert done.item.id == added.item.id
    assert done.item.content[0].text == text
    updated = events[4]
    assert isinstance(updated, ThreadUpdatedEvent) and updated.thread.title == "say it"

    # The thread is a Loom thread: same id, same messages, same ids.
    native = loom.client("alice")
    assert native.get(f"/threads/{thread_id}").json()["name"] == "say it"
    values = messages(native, thread_id)
    assert native_conversation(values) == [("user", "say it"), ("assistant", text)]
    items = ck.all_items(thread_id)
    assert [i.id for i in items] == [m["id"] for m in values]
    assert items[1] == done.item.model_copy(update={"created_at": items[1].created_at})


def test_add_user_message_and_get_by_id(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text="First answer.")
    thread_id = created_thread(ck.stream(create_req("first")))
    fake_llm.reply(text="Second answer.")
    events = ck.stream(add_req(thread_id, "second"))
    assert _kinds(events)[:3] == [
        "thread.item.done:user_message",
        "stream_options",
        "thread.item.added:assistant_message",
    ]
    assert not any(isinstance(e, ThreadCreatedEvent | ThreadUpdatedEvent) for e in events)
    assert "".join(deltas(events)) == "Second answer."
    # The model saw the whole conversation.
    prompt = fake_llm.chat_requests[-1]["messages"]
    assert [m["content"] for m in prompt if m["role"] in ("user", "assistant")] == [
        "first",
        "First answer.",
        "second",
    ]

    thread = ck.thread(thread_id)
    assert thread.id == thread_id and thread.title == "first"
    assert conversation(thread.items.data) == [
        ("user", "first"),
        ("assistant", "First answer."),
        ("user", "second"),
        ("assistant", "Second answer."),
    ]
    assert not thread.items.has_more


def test_threads_update_list_and_pagination(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    user = f"lister-{uuid.uuid4().hex[:6]}"
    ck = ChatKit(loom.client(user))
    ids = []
    for i in range(3):
        fake_llm.reply(text=f"Answer {i}.")
        ids.append(created_thread(ck.stream(create_req(f"question {i}"))))

    req = ThreadsUpdateReq(params=ThreadUpdateParams(thread_id=ids[0], title="Renamed"))
    assert ck.json(req, THREAD).title == "Renamed"
    assert loom.client(user).get(f"/threads/{ids[0]}").json()["name"] == "Renamed"

    def page(order: str, after: str | None) -> Any:
        params = ThreadListParams(limit=2, order=order, after=after)  # type: ignore[arg-type]
        return ck.json(ThreadsListReq(params=params), THREADS)

    first = page("asc", None)
    assert [t.id for t in first.data] == ids[:2] and first.has_more and first.after == ids[1]
    assert first.data[0].title == "Renamed"
    second = page("asc", first.after)
    assert [t.id for t in second.data] == ids[2:] and not second.has_more and not second.after
    newest = page("desc", None)
    assert [t.id for t in newest.data] == ids[::-1][:2] and newest.has_more
    rest = page("desc", newest.after)
    assert [t.id for t in rest.data] == [ids[0]] and not rest.has_more
    assert all(t.items.data == [] for t in first.data)

    # A thread made through the native API is a ChatKit thread too.
    native = loom.client(user)
    assistant_id = create_assistant(native, {"configurable": {"type": "chatbot"}})
    r = native.post("/threads", json={"name": "native", "assistant_id": assistant_id})
    native_id = r.json()["thread_id"]
    newest = page("desc", None)
    assert newest.data[0].id == native_id and newest.data[0].title == "native"


def test_items_pagination_both_orders(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text="A0.")
    thread_id = created_thread(ck.stream(create_req("Q0")))
    for i in (1, 2):
        fake_llm.reply(text=f"A{i}.")
        ck.stream(add_req(thread_id, f"Q{i}"))
    everything = ck.items(thread_id, "asc", 100)
    assert conversation(everything.data) == [
        ("user", "Q0"), ("assistant", "A0."), ("user", "Q1"),
        ("assistant", "A1."), ("user", "Q2"), ("assistant", "A2."),
    ]  # fmt: skip
    ids = [i.id for i in everything.data]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            page = ck.items(thread_id, order, 4, after)
            seen.extend(i.id for i in page.data)
            pages += 1
            if not page.has_more:
                assert page.after is None
                break
            assert page.after == page.data[-1].id
            after = page.after
        assert seen == expected and pages == 2
    # An unknown cursor is an empty page.
    assert ck.items(thread_id, "asc", 4, "msg_unknown").data == []


def test_delete_removes_the_loom_thread_and_checkpoints(
    loom: LoomServer, fake_llm: FakeOpenAI, database_url: str
) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text="Soon gone.")
    thread_id = created_thread(ck.stream(create_req("delete me")))

    def checkpoints() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    assert checkpoints() > 0
    r = ck.post(ThreadsDeleteReq(params=ThreadDeleteParams(thread_id=thread_id)))
    assert (r.status_code, r.json()) == (200, {})
    assert checkpoints() == 0
    assert loom.client("alice").get(f"/threads/{thread_id}").status_code == 404
    r = ck.post(ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id)))
    assert r.status_code == 404
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chatkit_item WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    assert row is not None and row[0] == 0


def test_feedback_is_stored_and_visible_natively(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text="Rate me.")
    events = ck.stream(create_req("answer please"))
    thread_id = created_thread(events)
    answer = next(i for i in ck.all_items(thread_id) if isinstance(i, AssistantMessageItem))

    def feedback(kind: str, ids: list[str], client: ChatKit = ck) -> Any:
        params = ItemFeedbackParams(thread_id=thread_id, item_ids=ids, kind=kind)  # type: ignore[arg-type]
        return client.post(ItemsFeedbackReq(params=params))

    r = feedback("negative", [answer.id])
    assert (r.status_code, r.json()) == (200, {})
    r = feedback("positive", [answer.id])  # changing one's mind replaces the verdict
    assert r.status_code == 200
    rows = loom.client("alice").get(f"/threads/{thread_id}/feedback").json()
    assert [(f["item_id"], f["message_id"], f["item_type"], f["kind"]) for f in rows] == [
        (answer.id, answer.id, "assistant_message", "positive")
    ]
    assert feedback("positive", ["msg_nope"]).status_code == 404
    assert feedback("positive", [answer.id], ChatKit(loom.client("bob"))).status_code == 404
    assert loom.client("bob").get(f"/threads/{thread_id}/feedback").status_code == 404


def test_run_failure_is_an_error_event(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.fail(400, message="secret upstream detail")
    events = ck.stream(create_req("this fails"))
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    # The error ends the turn (the library then saves the thread's new title).
    assert {e.type for e in events[events.index(error) + 1 :]} <= {"thread.updated"}
    assert error.allow_retry is True
    assert error.message and "secret" not in error.message
    thread_id = created_thread(events)
    # The thread still works afterwards.
    fake_llm.reply(text="Works again.")
    assert "".join(deltas(ck.stream(add_req(thread_id, "again")))) == "Works again."


def test_request_errors(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    ck = ChatKit(loom.client("alice"))
    fake_llm.reply(text="Mine.")
    thread_id = created_thread(ck.stream(create_req("mine")))

    def check(r: Any, status: int) -> None:
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"detail", "code"}
        assert "Traceback" not in r.text and "File " not in r.text

    check(ck.post({"type": "threads.nope", "params": {}}), 400)
    check(ck.post(b"{not json"), 400)
    check(ck.post({"type": "threads.get_by_id", "params": {}}), 400)
    check(ck.post({"type": "threads.create", "params": {"input": {"content": "x"}}}), 400)
    check(ck.post(create_req("x", on_disconnect="sometimes")), 400)
    check(ck.post(create_req("x", assistant_id=str(uuid.uuid4()))), 404)

    missing = str(uuid.uuid4())
    for tid in (missing, "not-a-uuid"):
        for req in _thread_requests(tid, "msg_x"):
            check(ck.post(req), 404)
    # Retrying after something that is not a user message.
    answer = ck.all_items(thread_id)[1]
    check(ck.post(_retry(thread_id, answer.id)), 400)
    check(ck.post(_retry(thread_id, "msg_missing")), 404)
    # Operations Loom does not offer (no client tools, no dictation, no sync actions): 400.
    action = {"type": "loom.approve", "payload": {}}
    for unsupported in (
        {"type": "threads.add_client_tool_output", "params": {"thread_id": thread_id, "result": 1}},
        {
            "type": "threads.sync_custom_action",
            "params": {"thread_id": thread_id, "action": action},
        },
        {"type": "input.transcribe", "params": {"audio_base64": "AAAA", "mime_type": "audio/webm"}},
    ):
        check(ck.post(unsupported), 400)
    # No credentials: 401 like every Loom route.
    assert loom.client(None).post("/chatkit", json={"type": "threads.list"}).status_code == 401


def _retry(thread_id: str, item_id: str) -> ThreadsRetryAfterItemReq:
    return ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=thread_id, item_id=item_id)
    )


def _thread_requests(thread_id: str, item_id: str) -> list[Any]:
    return [
        ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id)),
        ItemsListReq(params=ItemsListParams(thread_id=thread_id)),
        ThreadsUpdateReq(params=ThreadUpdateParams(thread_id=thread_id, title="t")),
        ThreadsDeleteReq(params=ThreadDeleteParams(thread_id=thread_id)),
        ItemsFeedbackReq(
            params=ItemFeedbackParams(thread_id=thread_id, item_ids=[item_id], kind="positive")
        ),
        add_req(thread_id, "hello?"),
        _retry(thread_id, item_id),
    ]


def test_other_users_threads_are_not_found(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    alice = ChatKit(loom.client("alice"))
    bob = ChatKit(loom.client("bob"))
    fake_llm.reply(text="Private.")
    thread_id = created_thread(alice.stream(create_req("private")))
    user_item = alice.all_items(thread_id)[0]
    assert isinstance(user_item, UserMessageItem)
    missing = str(uuid.uuid4())
    for foreign, absent in zip(
        _thread_requests(thread_id, user_item.id),
        _thread_requests(missing, user_item.id),
        strict=True,
    ):
        r, r2 = bob.post(foreign), bob.post(absent)
        assert r.status_code == 404, (foreign.type, r.text)
        assert r.json() == r2.json(), foreign.type
    listed = bob.json(ThreadsListReq(params=ThreadListParams(limit=100)), THREADS)
    assert thread_id not in {t.id for t in listed.data}
    # Nothing changed for alice.
    thread = alice.thread(thread_id)
    assert thread.title == "private"
    assert assistant_texts(thread.items.data) == ["Private."]
