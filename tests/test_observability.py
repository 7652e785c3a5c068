"""JSON logs carrying request, user, thread and run ids, and OpenTelemetry spans when (and only
when) an exporter is configured, from a real ``loom serve`` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from loom.settings import Settings
from loom.tracing import open_tracing
from tests.cluster import free_port, settings_env
from tests.conftest import Session, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.runs.helpers import CHATBOT, new_thread, run_body
from tests.runs.sse_client import check_shape, read_stream


def _serve(settings: Settings, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {**os.environ, **settings_env(settings), "LOOM_HOST": "127.0.0.1"}
    full.update(LOOM_PORT=str(port), PYTHONUNBUFFERED="1", **env)
    out = (tmp_path / "stdout.log").open("wb")
    err = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom", "serve"], env=full, stdout=out, stderr=err
    )
    out.close()
    err.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "loom serve did not start"
        time.sleep(0.1)


def test_json_logs_and_traces(database_url: str, fake_llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = make_settings(database_url, fake_llm)
    proc, url = _serve(
        settings,
        tmp_path,
        LOOM_LOG_FORMAT="json",
        LOOM_LOG_LEVEL="debug",
        LOOM_OTEL_EXPORTER="console",
    )
    try:
        client = Session(url, "alice", {})
        _, thread_id = new_thread(client, CHATBOT)
        fake_llm.reply(text="Logged and traced.")
        r = client.post(
            "/runs/stream",
            json=run_body(thread_id, "trace me"),
            headers={"X-Request-ID": "req-observe-1"},
            stream=True,
        )
        assert r.headers["x-request-id"] == "req-observe-1"
        stream = read_stream(r)
        check_shape(stream)
        run_id = stream.run_id
        r = client.get(f"/threads/{thread_id}/state")
        assert r.status_code == 200
        made_up = r.headers["x-request-id"]
        assert made_up and made_up != "req-observe-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    lines = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"].startswith("uvicorn") for r in records)

    def find(**want: str) -> dict[str, Any]:
        for record in records:
            if all(record.get(k) == v for k, v in want.items()):
                return record
        raise AssertionError(f"no log line with {want}")

    access = find(logger="loom.access", request_id="req-observe-1")
    assert access["user_id"] == "alice"
    assert access["message"].startswith("POST /runs/stream -> 200")
    state = find(logger="loom.access", request_id=made_up)
    assert (state["user_id"], state["thread_id"]) == ("alice", thread_id)
    ran = find(logger="loom.worker", run_id=run_id)
    assert (ran["thread_id"], ran["user_id"]) == (thread_id, "alice")
    assert ran["message"] == f"run {run_id}: success"

    spans = (tmp_path / "stdout.log").read_text()
    assert '"name": "loom.run"' in spans
    assert f'"loom.run_id": "{run_id}"' in spans
    assert '"loom.run.status": "success"' in spans
    assert '"name": "POST /runs/stream"' in spans
    assert '"loom.request_id": "req-observe-1"' in spans


def test_tracing_is_off_unless_configured() -> None:
    assert not open_tracing(Settings()).enabled
    assert open_tracing(Settings(otel_exporter="console")).enabled
