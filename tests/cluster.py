"""Loom as separate processes, the scaled form: ``loom serve --no-worker`` API processes and
``loom worker`` processes sharing one Postgres database and the local Redis.

Tests start real processes on free ports, send traffic only to 127.0.0.1 and stop exactly the
processes they started, by pid. A :class:`LoomCluster` offers the same ``url`` / ``client()``
interface as the in-process :class:`tests.conftest.LoomServer`; its clients spread their
requests over the API processes in turn, so every request may land on another process than
the one before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from loom.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOOM = [sys.executable, "-m", "loom"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a Loom process read ``settings`` (every field set)."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        alias = field.validation_alias
        key = f"LOOM_{name.upper()}"
        choices = getattr(alias, "choices", None)
        if choices:
            key = str(choices[0])
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[key] = text
    return env


class ClusterSession(requests.Session):
    """``requests`` with the user's cookie, spreading requests over several base URLs."""

    def __init__(self, bases: list[str], user: str | None, headers: dict[str, str]) -> None:
        super().__init__()
        self.bases = bases
        self._turn = 0
        if user is not None:
            self.cookies.set("opengpts_user_id", user)
        self.headers.update(headers)

    @property
    def base(self) -> str:
        return self.bases[self._turn % len(self.bases)]

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith("/"):
            url = self.bases[self._turn % len(self.bases)] + url
            self._turn += 1
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, **kwargs)


class LoomCluster:
    """``apis`` API processes (``--no-worker``) and ``workers`` worker processes."""

    def __init__(
        self,
        settings: Settings,
        *,
        apis: int = 2,
        workers: int = 2,
        logs: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if not settings.redis_url:
            raise ValueError("a cluster needs settings.redis_url")
        self.settings = settings.model_copy(update={"in_process_worker": False})
        self.n_apis = apis
        self.n_workers = workers
        self.api_procs: list[subprocess.Popen[bytes]] = []
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self._env = {
            **os.environ,
            **settings_env(self.settings),
            "LOOM_HOST": "127.0.0.1",
            "LOOM_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.logs = logs
        self._count = 0

    @property
    def url(self) -> str:
        return self.urls[0]

    def start(self) -> LoomCluster:
        for _ in range(self.n_apis):
            port = free_port()
            env = {**self._env, "LOOM_PORT": str(port)}
            self.api_procs.append(self._spawn(["serve", "--no-worker"], env, "api"))
            self.urls.append(f"http://127.0.0.1:{port}")
        for _ in range(self.n_workers):
            self.start_worker()
        deadline = time.monotonic() + 60
        for url, proc in zip(self.urls, self.api_procs, strict=True):
            while True:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"loom serve exited with {proc.returncode}")
                try:
                    if requests.get(url + "/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Loom API did not start")
                time.sleep(0.05)
        return self

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        proc = self._spawn(["worker"], {**self._env, **env}, "worker")
        self.worker_procs.append(proc)
        return proc

    def _spawn(self, args: list[str], env: dict[str, str], kind: str) -> subprocess.Popen[bytes]:
        if self.logs is None:
            return subprocess.Popen([*LOOM, *args], env=env)
        self._count += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        out = (self.logs / f"{kind}-{self._count}.log").open("ab")
        try:
            return subprocess.Popen([*LOOM, *args], env=env, stdout=out, stderr=out)
        finally:
            out.close()

    def log_text(self) -> str:
        """Everything the processes wrote (with ``logs``)."""
        if self.logs is None:
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.worker_procs if p.poll() is None]

    def client(
        self, user: str | None = "alice", *, api: int | None = None, **headers: str
    ) -> ClusterSession:
        """A session spreading requests over every API process, or bound to one (``api``)."""
        bases = self.urls if api is None else [self.urls[api]]
        return ClusterSession(bases, user, headers)

    def stop(self) -> None:
        procs = [*self.api_procs, *self.worker_procs]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LoomCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
