"""Decoding Loom's Server-Sent Events back into events, for the run tests.

One small parser (the SSE line format: ``field: value`` lines, a blank line ends an event,
``:`` lines are comments) used by every test that reads a stream, plus the compact-format
patch applier.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: Any = None  # the decoded JSON of the data lines; None when there was no data line
    has_data: bool = False
    id: str | None = None  # the ``id:`` field (the run's event sequence number)


@dataclass
class SseParser:
    """Incremental parser: feed it byte chunks, take complete events out."""

    comments: list[str] = field(default_factory=list)
    _buffer: bytes = b""
    _event: str | None = None
    _id: str | None = None
    _data: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        out: list[SseEvent] = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode("utf-8").removesuffix("\r")
            event = self._line(line)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> None:
        assert self._buffer == b"", f"stream ended inside a line: {self._buffer!r}"
        assert self._event is None and not self._data, "stream ended inside an event"

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if self._event is None and not self._data:
                return None
            name = self._event or "message"
            has_data = bool(self._data)
            data = json.loads("\n".join(self._data)) if has_data else None
            event = SseEvent(name, data, has_data, self._id)
            self._event, self._data, self._id = None, [], None
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        else:
            raise AssertionError(f"unexpected SSE field {name!r} in {line!r}")
        return None


def decode(body: bytes) -> list[SseEvent]:
    """All events of a complete SSE body."""
    parser = SseParser()
    events = parser.feed(body)
    parser.close()
    return events


def iter_events(response: requests.Response) -> Iterator[SseEvent]:
    """Events of a streaming response as they arrive."""
    parser = SseParser()
    for chunk in response.iter_content(chunk_size=None):
        yield from parser.feed(chunk)
    parser.close()


@dataclass
class Stream:
    """A finished stream: its events and how many bytes it took."""

    status_code: int
    events: list[SseEvent]
    nbytes: int
    content_type: str
    comments: list[str] = field(default_factory=list)  # heartbeats (": ping")

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def metadata(self) -> dict[str, Any]:
        first = self.events[0]
        assert first.event == "metadata", self.names
        assert isinstance(first.data, dict)
        return first.data

    @property
    def run_id(self) -> str:
        run_id = self.metadata["run_id"]
        assert isinstance(run_id, str)
        return run_id

    @property
    def data(self) -> list[Any]:
        """The payloads of the ``data`` events, in order."""
        return [e.data for e in self.events if e.event == "data"]

    @property
    def errors(self) -> list[Any]:
        return [e.data for e in self.events if e.event == "error"]


def read_stream(response: requests.Response) -> Stream:
    body = response.content
    parser = SseParser()
    events: list[SseEvent] = []
    if response.status_code == 200:
        events = parser.feed(body)
        parser.close()
    return Stream(
        status_code=response.status_code,
        events=events,
        nbytes=len(body),
        content_type=response.headers.get("content-type", ""),
        comments=parser.comments,
    )


def stream_run(client: requests.Session, body: dict[str, Any], fmt: str | None = None) -> Stream:
    """``POST /runs/stream`` and decode the whole answer."""
    params = {"format": fmt} if fmt else None
    response = client.post("/runs/stream", json=body, params=params)
    return read_stream(response)


def check_shape(stream: Stream) -> None:
    """``metadata`` first, ``end`` last (without data), nothing but data/error in between."""
    assert stream.status_code == 200
    assert stream.content_type.startswith("text/event-stream")
    names = stream.names
    assert names[0] == "metadata", names
    assert names[-1] == "end", names
    assert not stream.events[-1].has_data
    assert set(names[1:-1]) <= {"data", "error"}, names
    assert names.count("error") <= 1
    if "error" in names:
        assert names[-2] == "error", names
    check_ids(stream.events)


def check_ids(events: list[SseEvent], after: int = -1) -> None:
    """Every event carries an ``id:``; they increase (metadata is 0, run events from 1)."""
    ids = [e.id for e in events]
    assert all(i is not None and i.isdigit() for i in ids), ids
    numbers = [int(i) for i in ids if i is not None]
    assert numbers == sorted(set(numbers)), numbers
    assert not numbers or numbers[0] > after, (numbers, after)


def apply_patches(messages: list[dict[str, Any]], patches: Iterable[dict[str, Any]]) -> None:
    """Apply compact-format patches: a whole message (insert/replace by id) or a text delta."""
    for patch in patches:
        if set(patch) == {"id", "removed"}:
            messages[:] = [m for m in messages if m["id"] != patch["id"]]
            continue
        if set(patch) == {"id", "delta"}:
            [target] = [m for m in messages if m["id"] == patch["id"]]
            assert isinstance(target["content"], str)
            target["content"] += patch["delta"]
            continue
        assert "type" in patch and patch.get("id"), patch
        for i, message in enumerate(messages):
            if message["id"] == patch["id"]:
                messages[i] = dict(patch)
                break
        else:
            messages.append(dict(patch))


class OpenStream:
    """A ``POST /runs/stream`` (or, without a body, a ``GET`` of ``path``) read event by
    event."""

    def __init__(
        self,
        client: requests.Session,
        body: dict[str, Any] | None = None,
        *,
        path: str = "/runs/stream",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if body is not None:
            self.response = client.post(
                path, json=body, params=params, headers=headers, stream=True
            )
        else:
            self.response = client.get(path, params=params, headers=headers, stream=True)
        assert self.response.status_code == 200, self.response.text
        self.events: list[SseEvent] = []
        self._iter: Iterator[SseEvent] = iter_events(self.response)

    def until(self, predicate: Any) -> SseEvent:
        for event in self._iter:
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"stream ended first: {[e.event for e in self.events]}")

    def first_token(self) -> SseEvent:
        return self.until(lambda e: e.event == "data" and e.data[-1]["type"] == "ai")

    def next(self) -> SseEvent:
        return self.until(lambda e: True)

    @property
    def last_id(self) -> str:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1]

    def rest(self) -> list[SseEvent]:
        self.events.extend(self._iter)
        self.response.close()
        return self.events

    @property
    def run_id(self) -> str:
        assert self.events and self.events[0].event == "metadata"
        run_id = self.events[0].data["run_id"]
        assert isinstance(run_id, str)
        return run_id

    def close(self) -> None:
        self.response.close()
