"""Busy threads (``multitask_strategy``), ``on_disconnect``, and resuming a stream with
``Last-Event-ID`` in both formats."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import messages, new_thread, run_body, wait_run
from tests.runs.sse_client import OpenStream, apply_patches, check_ids, check_shape, stream_run

SLOW = " ".join(f"s{i}" for i in range(60))  # 60 tokens
DELAY = 0.03  # per token: about two seconds in all


def _contents(client: Any, thread_id: str) -> list[str]:
    return [m["content"] for m in messages(client, thread_id)]


def _with(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**body, **extra}


def test_reject_is_the_default(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.when("slow", text=SLOW, token_delay=DELAY)
    stream = OpenStream(client, run_body(thread_id, "slow"))
    stream.first_token()
    r = client.post("/runs", json=_with(run_body(thread_id, "me too"), multitask_strategy="reject"))
    assert r.status_code == 409, r.text
    stream.rest()
    assert _contents(client, thread_id) == ["slow", SLOW]


def test_enqueue_runs_after_the_current_run_in_order(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.when("first", text=SLOW, token_delay=DELAY)
    fake_llm.when("second", text="Second answer.")
    fake_llm.when("third", text="Third answer.")
    stream = OpenStream(client, run_body(thread_id, "first"))
    stream.first_token()
    queued = []
    for text in ("second", "third"):
        r = client.post(
            "/runs", json=_with(run_body(thread_id, text), multitask_strategy="enqueue")
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        assert r.json()["multitask_strategy"] == "enqueue"
        queued.append(r.json()["run_id"])
    events = stream.rest()
    assert events[-1].event == "end" and "error" not in [e.event for e in events]
    for run_id in queued:
        assert wait_run(client, run_id)["status"] == "success"
    assert _contents(client, thread_id) == [
        "first",
        SLOW,
        "second",
        "Second answer.",
        "third",
        "Third answer.",
    ]


def test_interrupt_stops_the_current_run_and_continues_from_its_progress(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Earlier answer.")
    check_shape(stream_run(client, run_body(thread_id, "earlier")))
    fake_llm.when("long", text=SLOW, token_delay=DELAY)
    fake_llm.when("instead", text="Taking the new question.")
    old = OpenStream(client, run_body(thread_id, "long"))
    old.first_token()

    new = stream_run(client, _with(run_body(thread_id, "instead"), multitask_strategy="interrupt"))
    check_shape(new)
    assert "error" not in new.names
    old_events = old.rest()
    assert old_events[-1].event == "end"
    assert client.get(f"/runs/{old.run_id}").json()["status"] == "interrupted"
    assert client.get(f"/runs/{new.run_id}").json()["status"] == "success"
    # The interrupted run kept its progress: its input, and its reply so far, marked stopped.
    streamed = [e.data for e in old_events if e.event == "data"][-1][-1]
    assert streamed["response_metadata"]["loom_status"] == "stopped"
    assert SLOW.startswith(streamed["content"]) and streamed["content"] != SLOW
    assert _contents(client, thread_id) == [
        "earlier",
        "Earlier answer.",
        "long",
        streamed["content"],
        "instead",
        "Taking the new question.",
    ]


def test_rollback_undoes_the_current_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Earlier answer.")
    check_shape(stream_run(client, run_body(thread_id, "earlier")))
    fake_llm.when("mistake", text=SLOW, token_delay=DELAY)
    fake_llm.when("replacement", text="Answer to the replacement.")
    old = OpenStream(client, run_body(thread_id, "mistake"))
    old.first_token()

    new = stream_run(
        client, _with(run_body(thread_id, "replacement"), multitask_strategy="rollback")
    )
    check_shape(new)
    assert "error" not in new.names
    old_events = old.rest()
    assert [e.event for e in old_events[-2:]] == ["error", "end"]
    assert old_events[-2].data["status_code"] == 499
    assert client.get(f"/runs/{old.run_id}").json()["status"] == "cancelled"
    # As if the rolled-back run had never run: its input is gone too.
    assert _contents(client, thread_id) == [
        "earlier",
        "Earlier answer.",
        "replacement",
        "Answer to the replacement.",
    ]


def test_rollback_of_a_threads_first_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.when("oops", text=SLOW, token_delay=DELAY)
    fake_llm.when("better", text="Better answer.")
    old = OpenStream(client, run_body(thread_id, "oops"))
    old.first_token()
    new = stream_run(client, _with(run_body(thread_id, "better"), multitask_strategy="rollback"))
    check_shape(new)
    old.rest()
    assert _contents(client, thread_id) == ["better", "Better answer."]


def test_interrupt_and_rollback_cancel_queued_runs(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.when("busy", text=SLOW, token_delay=DELAY)
    fake_llm.when("now", text="Now.")
    old = OpenStream(client, run_body(thread_id, "busy"))
    old.first_token()
    r = client.post("/runs", json=_with(run_body(thread_id, "later"), multitask_strategy="enqueue"))
    queued = r.json()["run_id"]
    new = stream_run(client, _with(run_body(thread_id, "now"), multitask_strategy="interrupt"))
    check_shape(new)
    old_events = old.rest()
    assert client.get(f"/runs/{queued}").json()["status"] == "cancelled"
    partial = [e.data for e in old_events if e.event == "data"][-1][-1]["content"]
    assert _contents(client, thread_id) == ["busy", partial, "now", "Now."]


def test_on_disconnect_cancel_stops_the_run(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW, token_delay=DELAY)
    stream = OpenStream(client, _with(run_body(thread_id, "bye"), on_disconnect="cancel"))
    stream.first_token()
    stream.close()
    run = wait_run(client, stream.run_id)
    assert run["status"] == "cancelled"
    assert run["on_disconnect"] == "cancel"
    kept = messages(client, thread_id)
    assert [m["type"] for m in kept] == ["human", "ai"]  # the reply so far, marked stopped
    assert kept[1]["response_metadata"]["loom_status"] == "stopped"
    assert SLOW.startswith(kept[1]["content"]) and kept[1]["content"] != SLOW


def test_on_disconnect_continue_is_the_default(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW, token_delay=0.005)
    stream = OpenStream(client, run_body(thread_id, "stay"))
    stream.first_token()
    stream.close()
    assert wait_run(client, stream.run_id)["status"] == "success"
    assert _contents(client, thread_id) == ["stay", SLOW]


def _resume(
    loom: LoomServer, fake_llm: FakeOpenAI, fmt: str, cut_after: int
) -> tuple[list[Any], list[Any], str]:
    """Follow a run with ``GET /runs/{id}/stream``, drop the connection after ``cut_after``
    events, reconnect with ``Last-Event-ID``; answer both halves and the run id."""
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text=SLOW, token_delay=DELAY)
    r = client.post("/runs", json=run_body(thread_id, "resume me"))
    run_id = r.json()["run_id"]
    params = {"format": fmt}
    first = OpenStream(client, path=f"/runs/{run_id}/stream", params=params)
    for _ in range(cut_after):
        first.next()
    first.close()
    last = first.last_id
    time.sleep(0.2)  # events keep coming while nobody listens
    second = OpenStream(
        client, path=f"/runs/{run_id}/stream", params=params, headers={"Last-Event-ID": last}
    )
    rest = second.rest()
    check_ids(rest, after=int(last))
    assert rest[-1].event == "end" and "error" not in [e.event for e in rest]
    # exactly the events after it: none lost, none repeated
    ids = [int(e.id) for e in [*first.events, *rest] if e.id is not None]
    assert ids == sorted(set(ids))
    assert "metadata" not in [e.event for e in rest]
    return first.events, rest, run_id


def test_resume_with_last_event_id_compact(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    before, after, _ = _resume(loom, fake_llm, "compact", cut_after=12)
    assert before[0].event == "metadata" and before[0].id == "0"
    ids = [int(e.id) for e in [*before, *after] if e.id is not None]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing skipped
    state: list[dict[str, Any]] = []
    for event in [*before, *after]:
        if event.event == "data":
            apply_patches(state, event.data)
    assert [(m["type"], m["content"]) for m in state] == [("human", "resume me"), ("ai", SLOW)]


def test_resume_with_last_event_id_opengpts(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    _, after, _ = _resume(loom, fake_llm, "opengpts", cut_after=12)
    # the first event after the reconnect carries the whole list so far, the last the reply
    first_data = next(e for e in after if e.event == "data")
    assert first_data.data[0]["content"] == "resume me"
    assert SLOW.startswith(first_data.data[-1]["content"])
    last_data = [e for e in after if e.event == "data"][-1]
    assert [(m["type"], m["content"]) for m in last_data.data] == [
        ("human", "resume me"),
        ("ai", SLOW),
    ]


def test_stream_of_a_finished_run_replays_from_an_id(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Short reply here.")
    done = stream_run(client, run_body(thread_id, "hi"), fmt="compact")
    check_shape(done)
    ids = [e.id for e in done.events]
    r = client.get(
        f"/runs/{done.run_id}/stream",
        params={"format": "compact"},
        headers={"Last-Event-ID": ids[2]},
    )
    from tests.runs.sse_client import read_stream

    again = read_stream(r)
    assert [e.id for e in again.events] == ids[3:]
    assert [e.data for e in again.events] == [e.data for e in done.events[3:]]
