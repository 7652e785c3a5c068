"""``GET /metrics``: Prometheus text with runs by status, latencies, the queue, open streams,
tokens streamed, model and tool errors by kind, and ingests, as one process counts them.

In one process the server executes its runs, so one scrape sees everything; in the scaled
form each process answers for itself (a worker's metrics are on ``LOOM_METRICS_PORT``:
``test_metrics_worker.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI, ToolCall, tokenize
from tests.retrieval.helpers import ingest
from tests.runs.helpers import CHATBOT, agent_config, new_thread, run_body
from tests.runs.sse_client import OpenStream, check_shape, stream_run

TEXT = "Metrics count runs, not tokens one by one."


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    with LoomServer(make_settings(database_url, fake_llm)) as loom:
        yield loom


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_runs_tokens_latencies_and_errors(server: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = server.client("alice")
    before = scrape(server.url)
    _, thread_id = new_thread(client, CHATBOT)
    fake_llm.reply(text=TEXT)
    check_shape(stream_run(client, run_body(thread_id, "count")))
    fake_llm.fail(400)
    failed = stream_run(client, run_body(thread_id, "fail"))
    assert failed.errors

    after = scrape(server.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("loom_runs_finished_total", status="success") == 1
    assert grew("loom_runs_finished_total", status="error") == 1
    assert grew("loom_run_errors_total", code="upstream_error") == 1
    assert grew("loom_tokens_streamed_total") == len(tokenize(TEXT))
    assert grew("loom_run_duration_seconds_count") == 2
    assert grew("loom_run_first_token_seconds_count") == 1  # the failed run had none
    assert grew("loom_run_claim_wait_seconds_count") == 2
    assert value(after, "loom_runs", status="pending") == 0
    assert value(after, "loom_runs", status="running") == 0
    assert value(after, "loom_streams_open") == 0


def test_open_streams_and_the_queue(server: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = server.client("alice")
    _, thread_id = new_thread(client, CHATBOT)
    fake_llm.reply(text=TEXT, token_delay=0.2)
    stream = OpenStream(client, run_body(thread_id, "slowly"))
    stream.first_token()
    during = scrape(server.url)
    assert value(during, "loom_streams_open") == 1
    assert value(during, "loom_runs", status="running") == 1
    stream.rest()
    deadline = time.monotonic() + 10
    while value(scrape(server.url), "loom_streams_open") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_tool_errors_by_kind(server: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = server.client("alice")
    before = scrape(server.url)
    _, thread_id = new_thread(client, agent_config([{"type": "web_fetch"}]))
    # fetch_allow_private is off: a loopback URL is refused before any connection.
    fake_llm.reply(tool_calls=[ToolCall("web_fetch", {"url": "http://127.0.0.1:9/x"}, id="c1")])
    fake_llm.reply(text="It was refused.")
    check_shape(stream_run(client, run_body(thread_id, "fetch it")))
    after = scrape(server.url)
    labels = {"tool": "web_fetch", "kind": "refused"}
    assert (
        value(after, "loom_tool_errors_total", **labels)
        - value(before, "loom_tool_errors_total", **labels)
        == 1
    )


def test_ingests_by_outcome(server: LoomServer) -> None:
    client = server.client("alice")
    assistant_id, _ = new_thread(client, CHATBOT)
    before = scrape(server.url)
    r = ingest(client, [("a.txt", b"Herons are patient birds.\n")], assistant_id=assistant_id)
    assert r.status_code == 200, r.text
    r = ingest(client, [("b.pdf", b"not a pdf at all")], assistant_id=assistant_id)
    assert r.status_code == 415
    after = scrape(server.url)

    def grew(status: str) -> float:
        labels = {"mode": "sync", "status": status}
        return value(after, "loom_ingest_jobs_total", **labels) - value(
            before, "loom_ingest_jobs_total", **labels
        )

    assert (grew("done"), grew("error")) == (1, 1)
