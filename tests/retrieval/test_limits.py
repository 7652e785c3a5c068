"""Upload limits: per file and per request (413, nothing stored), independent of the app-wide
body limit, which ``/ingest`` is exempt from."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import CHATBOT, create_assistant

from .helpers import count, ingest

FILE_LIMIT = 20_000
REQUEST_LIMIT = 50_000
BODY_LIMIT = 4_096  # the app-wide limit, far below the ingest limits


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    settings = make_settings(
        database_url,
        fake_llm,
        max_body_bytes=BODY_LIMIT,
        ingest_max_file_bytes=FILE_LIMIT,
        ingest_max_request_bytes=REQUEST_LIMIT,
    )
    with LoomServer(settings) as loom:
        yield loom


def _text(size: int) -> bytes:
    line = b"Herons wait patiently at the edge of the water for fish.\n"
    return (line * (size // len(line) + 1))[:size]


def test_ingest_is_not_bound_by_the_app_body_limit(server: LoomServer, database_url: str) -> None:
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    r = ingest(client, [("big.txt", _text(FILE_LIMIT))], assistant_id=assistant_id)
    assert r.status_code == 200, r.text
    assert count(database_url, f"assistant:{assistant_id}") == r.json()[0]["chunks"] > 10
    # while other routes still are
    r = client.post("/assistants", json={"name": "x" * BODY_LIMIT, "config": CHATBOT})
    assert r.status_code == 413


def test_file_over_the_limit(server: LoomServer, database_url: str) -> None:
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    r = ingest(
        client,
        [("ok.txt", _text(100)), ("huge.txt", _text(FILE_LIMIT + 1))],
        assistant_id=assistant_id,
    )
    assert r.status_code == 413, r.text
    assert (
        r.json()["detail"] == f"huge.txt: {FILE_LIMIT + 1} bytes is over the limit of {FILE_LIMIT}"
    )
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_request_over_the_limit(server: LoomServer, database_url: str) -> None:
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    files = [(f"f{i}.txt", _text(FILE_LIMIT - 10)) for i in range(3)]  # each file is fine
    r = ingest(client, files, assistant_id=assistant_id)
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == f"Request body too large (limit {REQUEST_LIMIT} bytes)"
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_request_over_the_limit_without_content_length(
    server: LoomServer, database_url: str
) -> None:
    """A chunked upload (no Content-Length) is cut off while it streams."""
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    boundary = "loomtestboundary"
    config = json.dumps({"configurable": {"assistant_id": assistant_id}})

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="config"\r\n\r\n{config}\r\n'
        ).encode()
        for i in range(4):
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files";'
                f' filename="f{i}.txt"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            yield _text(FILE_LIMIT - 10) + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    r = client.post(
        "/ingest",
        data=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413, r.text
    assert count(database_url, f"assistant:{assistant_id}") == 0
