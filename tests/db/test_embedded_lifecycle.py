"""The embedded Postgres lives and dies with ``loom serve``: stopped on SIGTERM and SIGINT,
and reused (then stopped) by the next server when a crash left it running.

Real ``loom serve`` processes on a data folder of their own (no database URL: the embedded
server), each stopped by pid; the Postgres they start is found through its ``postmaster.pid``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.cluster import free_port

LOOM = [sys.executable, "-m", "loom", "serve"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


STARTED: list[subprocess.Popen[bytes]] = []  # stopped at the end whatever happened


class Serve:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
        env.update(
            LOOM_DATA_DIR=str(data_dir),
            LOOM_HOST="127.0.0.1",
            LOOM_PORT=str(self.port),
            LOOM_LOG_LEVEL="warning",
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        )
        self.log = data_dir.parent / f"serve-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(LOOM, env=env, stdout=out, stderr=out)
        STARTED.append(self.proc)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "loom serve did not start"
            time.sleep(0.1)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def _postgres_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _wait_gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("embedded") / "data"
    yield folder
    # Stop what a failed test may have left: its servers, then the Postgres of this folder.
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    pid_file = folder / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        pid = _postgres_pid(folder)
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_postgres_stops_with_the_server(data_dir: Path, sig: int) -> None:
    server = Serve(data_dir)
    postgres = _postgres_pid(data_dir)
    assert _alive(postgres)
    code = server.stop(sig)
    assert code in (0, 128 + sig), server.log.read_text()
    assert _wait_gone(postgres), "the embedded Postgres outlived the server"
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_a_server_reuses_what_a_crash_left_running(data_dir: Path) -> None:
    first = Serve(data_dir)
    r = requests.post(
        first.url + "/assistants",
        json={"name": "kept", "config": {"configurable": {"type": "chatbot"}}},
        cookies={"opengpts_user_id": "alice"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    postgres = _postgres_pid(data_dir)
    first.stop(signal.SIGKILL)  # a crash: nothing is let go
    time.sleep(0.5)
    assert _alive(postgres), "the embedded Postgres should outlive a crash"

    second = Serve(data_dir)
    assert _postgres_pid(data_dir) == postgres  # the same server, reused
    names = [
        a["name"]
        for a in requests.get(
            second.url + "/assistants", cookies={"opengpts_user_id": "alice"}, timeout=30
        ).json()
    ]
    assert names == ["kept"]
    assert "reusing it" in second.log.read_text()
    assert second.stop(signal.SIGTERM) in (0, 128 + signal.SIGTERM)
    assert _wait_gone(postgres), "the server that reused Postgres did not stop it"
