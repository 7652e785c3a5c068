"""A Loom process that stops closes its connections to the model provider.

Chat models and embeddings send through the process's own HTTP client
(:func:`loom.providers.open_provider_http`), closed on shutdown; a connection left open would
outlive the server's event loop (and ``langchain-openai``'s shared client never closes its own).
"""

from __future__ import annotations

import time

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.retrieval.helpers import ingest
from tests.runs.helpers import new_thread, run_body
from tests.runs.sse_client import check_shape, stream_run


def test_stopping_closes_the_kept_alive_provider_connections(
    database_url: str, fake_llm: FakeOpenAI
) -> None:
    with LoomServer(make_settings(database_url, fake_llm)) as server:
        client = server.client("alice")
        assistant_id, thread_id = new_thread(client)
        fake_llm.reply(text="Hello!")
        check_shape(stream_run(client, run_body(thread_id, "hi")))
        r = ingest(client, [("notes.txt", b"Some notes to embed.")], assistant_id=assistant_id)
        assert r.status_code == 200, r.text
        assert [f["chunks"] for f in r.json()] == [1]
        assert fake_llm.embedding_requests
        # Kept alive for the next request (the model's and the embeddings' share one pool).
        assert fake_llm.open_connections >= 1
        client.close()
    # The server's shutdown closed them; the fake sees each end (bounded wait for its loop).
    for _ in range(500):
        if fake_llm.open_connections == 0:
            break
        time.sleep(0.01)
    assert fake_llm.open_connections == 0
