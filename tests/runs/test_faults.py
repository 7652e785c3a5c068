"""Model provider faults: retried before the first token, a clean error after it.

Every fault is injected by the fake OpenAI server (HTTP errors, a connection cut mid-stream, a
stall, a malformed chunk). After a failure the thread keeps only what the client sent (never a
partial AI message) and still works for the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import LoomServer, make_settings, start_loom
from tests.fakes.openai_server import FakeOpenAI, tokenize
from tests.runs.helpers import history, messages, new_thread, run_body, state
from tests.runs.sse_client import Stream, check_shape, stream_run

TEXT = "One two three four five six seven eight."
MAX_RETRIES = 2  # the default model_max_retries


@pytest.fixture(scope="module")
def quick(
    database_url: str, fake_llm: FakeOpenAI, request: pytest.FixtureRequest
) -> Iterator[LoomServer]:
    """A server that gives up on a silent model after one second (and pings idle streams)."""
    settings = make_settings(
        database_url, fake_llm, model_timeout_seconds=1.0, stream_heartbeat_seconds=0.2
    )
    with start_loom(settings, request) as server:
        yield server


def _prefixes(text: str, n: int | None = None) -> list[str]:
    tokens = tokenize(text)[:n]
    return ["".join(tokens[: i + 1]) for i in range(len(tokens))]


def _ai_contents(stream: Stream) -> list[str]:
    return [event[-1]["content"] for event in stream.data if event[-1]["type"] == "ai"]


def _check_safe(message: str) -> None:
    assert message.strip()
    for leak in (
        "Traceback",
        "http://",
        "https://",
        "127.0.0.1",
        "Fake OpenAI",
        "openai.",
        "File ",
    ):
        assert leak not in message, message


def _check_failed(
    client: requests.Session,
    thread_id: str,
    stream: Stream,
    before: list[dict[str, Any]],
    status_code: int,
    message: str,
    partial: str = "",
) -> None:
    """One error event then end; the run recorded as failed; the human input kept, and the
    reply's text so far (if any), marked failed."""
    check_shape(stream)
    assert stream.names[-2:] == ["error", "end"]
    assert stream.errors == [{"status_code": status_code, "message": message}]
    _check_safe(message)
    run = client.get(f"/runs/{stream.run_id}").json()
    assert (run["status"], run["error"]) == ("error", message)
    after = messages(client, thread_id)
    assert after[: len(before)] == before
    expected = [("human", "go")] + ([("ai", partial)] if partial else [])
    assert [(m["type"], m["content"]) for m in after[len(before) :]] == expected
    if partial:
        kept = after[-1]
        assert kept["response_metadata"]["loom_status"] == "failed"
        # the stream's last data event shows the same message, marked, as the state does
        assert stream.data[-1][-1] == kept
    streamed_ids = {m["id"] for event in stream.data for m in event}
    assert {m["id"] for m in after} <= streamed_ids | {m["id"] for m in before}


def _thread_still_works(
    client: requests.Session, fake_llm: FakeOpenAI, thread_id: str, text: str = "Back again."
) -> None:
    before = messages(client, thread_id)
    fake_llm.reply(text=text)
    stream = stream_run(client, run_body(thread_id, "still there?"))
    check_shape(stream)
    assert "error" not in stream.names
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"
    after = messages(client, thread_id)
    assert after[: len(before)] == before
    assert [(m["type"], m["content"]) for m in after[len(before) :]] == [
        ("human", "still there?"),
        ("ai", text),
    ]


def _fresh(client: requests.Session, fake_llm: FakeOpenAI) -> tuple[str, list[dict[str, Any]]]:
    """A thread with one finished exchange."""
    _, thread_id = new_thread(client)
    fake_llm.reply(text="Hi.")
    check_shape(stream_run(client, run_body(thread_id, "hello")))
    return thread_id, messages(client, thread_id)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 500}, id="500"),
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 429, "retry_after": 0.01}, id="429"),
        pytest.param({"status": 429}, id="429-no-retry-after"),
        pytest.param({"cut": 0}, id="cut-before-first-token"),
    ],
)
def test_transient_failure_before_first_token_is_retried(
    loom: LoomServer, fake_llm: FakeOpenAI, fault: dict[str, Any]
) -> None:
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    if "cut" in fault:
        fake_llm.fault("cut", after_tokens=fault["cut"])
    else:
        fake_llm.fail(**fault)
    fake_llm.reply(text=TEXT)
    requests_before = len(fake_llm.chat_requests)

    stream = stream_run(client, run_body(thread_id, "go"))
    check_shape(stream)
    assert "error" not in stream.names
    # The client never notices: one AI message, streamed token by token once.
    assert _ai_contents(stream) == [*_prefixes(TEXT), TEXT]
    assert len({event[-1]["id"] for event in stream.data[1:]}) == 1
    assert fake_llm.pending == 0
    sent = fake_llm.chat_requests[requests_before:]
    assert len(sent) == 2 and sent[0] == sent[1]  # the same request, sent again
    after = messages(client, thread_id)
    assert after[: len(before)] == before
    assert [(m["type"], m["content"]) for m in after[len(before) :]] == [
        ("human", "go"),
        ("ai", TEXT),
    ]
    assert after[len(before) :] == stream.data[-1]
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"


@pytest.mark.parametrize("status", [500, 429])
def test_persistent_failure_is_one_clean_error(
    loom: LoomServer, fake_llm: FakeOpenAI, status: int
) -> None:
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    for _ in range(MAX_RETRIES + 2):
        fake_llm.fail(
            status,
            message="upstream exploded at http://10.1.2.3:8080/internal (Traceback follows)",
        )

    stream = stream_run(client, run_body(thread_id, "go"))
    # exactly 1 + MAX_RETRIES attempts, then the error
    assert fake_llm.pending == 1
    expected = (
        "The model provider is rate limiting requests; try again shortly"
        if status == 429
        else "The model provider answered with HTTP 500"
    )
    _check_failed(client, thread_id, stream, before, 502, expected)
    assert stream.names == ["metadata", "data", "error", "end"]  # data: the human input only
    fake_llm.reset()
    _thread_still_works(client, fake_llm, thread_id)


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(loom: LoomServer, fake_llm: FakeOpenAI, status: int) -> None:
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fail(status)
    fake_llm.reply(text="never served")
    stream = stream_run(client, run_body(thread_id, "go"))
    assert fake_llm.pending == 1
    [error] = stream.errors
    assert error["status_code"] == 502
    _check_failed(client, thread_id, stream, before, 502, error["message"])
    fake_llm.reset()
    _thread_still_works(client, fake_llm, thread_id)


def test_cut_mid_stream(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fault("cut", after_tokens=3, text=TEXT)
    fake_llm.reply(text="not used")  # a failure after the first token is never retried

    stream = stream_run(client, run_body(thread_id, "go"))
    streamed = _prefixes(TEXT, 3)
    assert _ai_contents(stream) == [*streamed, streamed[-1]]  # then once more, marked
    _check_failed(
        client,
        thread_id,
        stream,
        before,
        502,
        "The connection to the model provider failed",
        partial=streamed[-1],
    )
    assert fake_llm.pending == 1
    fake_llm.reset()
    _thread_still_works(client, fake_llm, thread_id)


@pytest.mark.parametrize("after_tokens", [0, 2])
def test_malformed_chunk(loom: LoomServer, fake_llm: FakeOpenAI, after_tokens: int) -> None:
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fault("bad_json", after_tokens=after_tokens, text=TEXT)
    stream = stream_run(client, run_body(thread_id, "go"))
    streamed = _prefixes(TEXT, after_tokens)
    assert _ai_contents(stream) == [*streamed, *streamed[-1:]]
    _check_failed(
        client,
        thread_id,
        stream,
        before,
        502,
        "The model provider sent a malformed response",
        partial=streamed[-1] if streamed else "",
    )
    _thread_still_works(client, fake_llm, thread_id)


def test_stall_after_first_token_times_out(quick: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = quick.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fault("stall", after_tokens=2, text=TEXT)
    stream = stream_run(client, run_body(thread_id, "go"))
    streamed = _prefixes(TEXT, 2)
    assert _ai_contents(stream) == [*streamed, streamed[-1]]
    _check_failed(
        client,
        thread_id,
        stream,
        before,
        504,
        "The model provider did not answer in time",
        partial=streamed[-1],
    )
    # While the model was silent (a whole second) the stream carried heartbeat comments,
    # which SSE clients (and the guide's line filter) skip.
    assert stream.comments and set(stream.comments) == {"ping"}
    _thread_still_works(client, fake_llm, thread_id)


def test_stall_before_first_token_is_not_retried(quick: LoomServer, fake_llm: FakeOpenAI) -> None:
    """A provider that says nothing for the whole timeout fails the run; no second wait."""
    client = quick.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fault("stall", text="never sent")
    spare = fake_llm.reply(text=TEXT)
    stream = stream_run(client, run_body(thread_id, "go"))
    check_shape(stream)
    assert [e["status_code"] for e in stream.errors] == [504]
    assert spare.requests == []
    assert [m["type"] for m in messages(client, thread_id)[len(before) :]] == ["human"]


def test_failed_run_can_be_retried_with_null_input(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    """A model call that failed before its first token leaves the thread waiting on that
    step: ``input: null`` retries it."""
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fail(400)  # not retried by Loom itself
    failed = stream_run(client, run_body(thread_id, "go"))
    assert failed.errors
    assert state(client, thread_id)["next"] == ["chatbot"]

    reply = fake_llm.reply(text="Second try worked.")
    stream = stream_run(client, {"thread_id": thread_id, "input": None})
    check_shape(stream)
    assert "error" not in stream.names
    current = state(client, thread_id)
    assert current["next"] == []
    assert [(m["type"], m["content"]) for m in current["values"][len(before) :]] == [
        ("human", "go"),
        ("ai", "Second try worked."),
    ]
    [request] = reply.requests
    assert request["messages"][-1] == {"role": "user", "content": "go"}


def test_a_reply_cut_short_is_retried_by_forking_before_it(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    """A failed reply with text is kept (marked failed) as the model's output, so the thread
    is not waiting on a step any more; retrying means a run from the checkpoint before it."""
    client = loom.client("alice")
    thread_id, before = _fresh(client, fake_llm)
    fake_llm.fault("cut", after_tokens=2, text=TEXT)
    failed = stream_run(client, run_body(thread_id, "go"))
    assert failed.errors
    current = state(client, thread_id)
    assert current["next"] == []
    assert current["values"][-1]["response_metadata"]["loom_status"] == "failed"
    [head, waiting, *_] = history(client, thread_id)
    assert head["next"] == [] and waiting["next"] == ["chatbot"]
    fake_llm.reply(text="The whole answer.")
    retry = stream_run(
        client,
        {
            "thread_id": thread_id,
            "input": None,
            "config": {"configurable": {"checkpoint_id": waiting["checkpoint_id"]}},
        },
    )
    check_shape(retry)
    assert "error" not in retry.names
    assert [(m["type"], m["content"]) for m in messages(client, thread_id)[len(before) :]] == [
        ("human", "go"),
        ("ai", "The whole answer."),
    ]
