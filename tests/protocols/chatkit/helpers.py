"""A small ChatKit client for the tests: request bodies built from ``chatkit.types``, every
streamed ``data:`` line parsed with the library's ``ThreadStreamEvent`` type."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from chatkit.types import (
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    InferenceOptions,
    ItemsListParams,
    ItemsListReq,
    Page,
    Thread,
    ThreadAddUserMessageParams,
    ThreadCreatedEvent,
    ThreadCreateParams,
    ThreadGetByIdParams,
    ThreadItem,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsGetByIdReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import BaseModel, TypeAdapter

EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
THREAD: TypeAdapter[Thread] = TypeAdapter(Thread)
THREADS: TypeAdapter[Page[Thread]] = TypeAdapter(Page[Thread])
ITEMS: TypeAdapter[Page[ThreadItem]] = TypeAdapter(Page[ThreadItem])


def user_input(text: str, attachments: Sequence[str] = ()) -> UserMessageInput:
    return UserMessageInput(
        content=[UserMessageTextContent(text=text)],
        attachments=list(attachments),
        inference_options=InferenceOptions(),
    )


def create_req(text: str, **metadata: Any) -> ThreadsCreateReq:
    return ThreadsCreateReq(params=ThreadCreateParams(input=user_input(text)), metadata=metadata)


def add_req(thread_id: str, text: str, **metadata: Any) -> ThreadsAddUserMessageReq:
    return ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(thread_id=thread_id, input=user_input(text)),
        metadata=metadata,
    )


def parse_events(lines: Iterator[str]) -> Iterator[ThreadStreamEvent]:
    """ChatKit SSE: ``data: <json>`` lines, each followed by a blank line; nothing else."""
    expect_blank = False
    for line in lines:
        if expect_blank:
            assert line == "", line
            expect_blank = False
            continue
        assert line.startswith("data: "), line
        yield EVENT.validate_json(line[len("data: ") :])
        expect_blank = True
    assert not expect_blank or True


class ChatKit:
    """``POST /chatkit`` as one user."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def post(self, request: BaseModel | dict[str, Any] | bytes, **kwargs: Any) -> Any:
        if isinstance(request, BaseModel):
            data: bytes = request.model_dump_json().encode()
        elif isinstance(request, dict):
            data = json.dumps(request).encode()
        else:
            data = request
        headers = {"Content-Type": "application/json"}
        return self.session.post("/chatkit", data=data, headers=headers, **kwargs)

    def stream(self, request: BaseModel) -> list[ThreadStreamEvent]:
        r = self.post(request)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        return list(parse_events(iter(r.content.decode().split("\n")[:-1])))

    def open(self, request: BaseModel) -> tuple[Any, Iterator[ThreadStreamEvent]]:
        r = self.post(request, stream=True)
        assert r.status_code == 200, r.text
        lines = (line for line in r.iter_lines(decode_unicode=True))
        return r, parse_events(lines)

    def json(self, request: BaseModel, adapter: TypeAdapter[Any] | None = None) -> Any:
        r = self.post(request)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        return adapter.validate_json(r.content) if adapter else r.json()

    def thread(self, thread_id: str) -> Thread:
        req = ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id))
        return self.json(req, THREAD)  # type: ignore[no-any-return]

    def items(
        self, thread_id: str, order: str = "asc", limit: int | None = 100, after: str | None = None
    ) -> Page[ThreadItem]:
        params = ItemsListParams(thread_id=thread_id, order=order, limit=limit, after=after)  # type: ignore[arg-type]
        return self.json(ItemsListReq(params=params), ITEMS)  # type: ignore[no-any-return]

    def all_items(self, thread_id: str) -> list[ThreadItem]:
        return list(self.items(thread_id).data)


def created_thread(events: Sequence[ThreadStreamEvent]) -> str:
    first = events[0]
    assert isinstance(first, ThreadCreatedEvent), first
    return first.thread.id


def deltas(events: Sequence[ThreadStreamEvent], item_id: str | None = None) -> list[str]:
    return [
        e.update.delta
        for e in events
        if isinstance(e, ThreadItemUpdatedEvent)
        and isinstance(e.update, AssistantMessageContentPartTextDelta)
        and (item_id is None or e.item_id == item_id)
    ]


def done_items(events: Sequence[ThreadStreamEvent]) -> list[ThreadItem]:
    return [e.item for e in events if isinstance(e, ThreadItemDoneEvent)]


def assistant_texts(items: Sequence[ThreadItem]) -> list[str]:
    return [
        "".join(c.text for c in i.content) for i in items if isinstance(i, AssistantMessageItem)
    ]


def conversation(items: Sequence[ThreadItem]) -> list[tuple[str, str]]:
    """(role, text) of the user and assistant messages, in order."""
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, UserMessageItem):
            text = "".join(getattr(c, "text", "") for c in item.content)
            out.append(("user", text))
        elif isinstance(item, AssistantMessageItem):
            out.append(("assistant", "".join(c.text for c in item.content)))
    return out


def native_conversation(messages: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    roles = {"human": "user", "ai": "assistant"}
    return [
        (roles[m["type"]], m["content"])
        for m in messages
        if m["type"] in roles and isinstance(m["content"], str) and m["content"]
    ]


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
