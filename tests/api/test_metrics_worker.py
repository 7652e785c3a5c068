"""The scaled form's metrics: a ``loom worker`` executes the run, counts it and serves its
own metrics on ``LOOM_METRICS_PORT``; the API process that streamed it counts the stream."""

from __future__ import annotations

import time

import pytest
import requests

from tests.api.test_metrics import TEXT, scrape, value
from tests.cluster import LoomCluster, free_port
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI, tokenize
from tests.runs.helpers import CHATBOT, new_thread, run_body
from tests.runs.sse_client import check_shape, stream_run

pytestmark = pytest.mark.redis


def test_worker_serves_its_metrics(
    database_url: str, fake_llm: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    """The scaled form: the run executes in a ``loom worker``, which counts it and serves its
    own metrics; the API process that streamed it counts the stream."""
    settings = make_settings(
        database_url, fake_llm, redis_url=redis_url, redis_prefix=redis_prefix + "m:"
    )
    port = free_port()
    with LoomCluster(settings, apis=1, workers=0) as cluster:
        cluster.start_worker(LOOM_METRICS_PORT=str(port))
        client = cluster.client("alice")
        _, thread_id = new_thread(client, CHATBOT)
        fake_llm.reply(text=TEXT)
        check_shape(stream_run(client, run_body(thread_id, "count")))
        worker_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                worker = scrape(worker_url)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert value(worker, "loom_runs_finished_total", status="success") == 1
        assert value(worker, "loom_tokens_streamed_total") == len(tokenize(TEXT))
        api = scrape(cluster.url)
        assert value(api, "loom_runs_finished_total", status="success") == 0
        assert value(api, "loom_streams_open") == 0
