"""The server forms ``make bench`` measures, each started by a context manager.

A form is a way of running a server: the naive floor (``benchmarks/naive_server.py``) or one of
Loom's deployment shapes. ``form.start(backend)`` starts its processes and yields
``(url, pids)``: the base URL to drive and the pids whose CPU (with their descendants) is the
form's cost. Leaving the ``with`` block stops exactly the processes it started.

A form whose command line does not exist yet (or that dies while starting) raises
:class:`FormUnavailable` with the reason; the caller prints it and goes on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
POOL_MAX = 30  # Postgres connections per server process (c=32 runs never need more)


class FormUnavailable(RuntimeError):
    """The form cannot run here (yet): the reason is the message."""


@dataclass(frozen=True)
class Backend:
    """What every form runs against."""

    database_url: str
    llm_url: str
    redis_url: str
    log_dir: Path


Started = tuple[str, list[int]]


@dataclass(frozen=True)
class Form:
    name: str
    client: Literal["loom", "naive"]  # which wire protocol drives it
    description: str
    start: Callable[[Backend], AbstractContextManager[Started]]


# --- processes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    log: Path
    what: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise FormUnavailable(
                f"{self.what} exited with code {self.proc.returncode}: {_tail(self.log)}"
            )


@contextmanager
def _process(
    name: str, what: str, argv: Sequence[str], env: dict[str, str], log_dir: Path
) -> Iterator[_Child]:
    """One child process, output to ``log_dir/name.log``, interrupted (then killed) at exit."""
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield _Child(proc, log, what)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_for_port(port: int, children: Sequence[_Child]) -> None:
    deadline = time.monotonic() + 90
    while True:
        for child in children:
            child.check()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise FormUnavailable(f"port {port} not accepting connections after 90 s") from None
            time.sleep(0.1)


def _still_alive(children: Sequence[_Child], grace: float) -> None:
    """Processes with no port to wait for: give them ``grace`` seconds to fail on start."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for child in children:
            child.check()
        time.sleep(0.1)


# --- the naive floor ---------------------------------------------------------------------------


@contextmanager
def naive_floor(backend: Backend) -> Iterator[Started]:
    port = _free_port()
    argv = [PY, "-m", "benchmarks.naive_server", "--port", str(port)]
    argv += ["--database-url", backend.database_url, "--llm-url", backend.llm_url]
    argv += ["--pool-max", str(POOL_MAX)]
    with _process("floor", "the naive server", argv, dict(os.environ), backend.log_dir) as child:
        _wait_for_port(port, [child])
        yield f"http://127.0.0.1:{port}", [child.pid]


# --- Loom --------------------------------------------------------------------------------------


def _loom_env(backend: Backend, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "LOOM_DATABASE_URL": backend.database_url,
        "LOOM_HOST": "127.0.0.1",
        "LOOM_PORT": str(port),
        "LOOM_LOG_LEVEL": "warning",
        "LOOM_DB_POOL_MAX": str(POOL_MAX),
        "OPENAI_BASE_URL": backend.llm_url,
        "OPENAI_API_KEY": "bench",
        # The figures measure the server, not its per-user limits.
        "LOOM_RATE_LIMIT_PER_MINUTE": "0",
        "LOOM_MAX_ACTIVE_RUNS": "0",
        "LOOM_MAX_OPEN_STREAMS": "0",
    }
    for key in ("LOOM_WORKERS", "LOOM_PROCESSES", "LOOM_REDIS_URL"):
        env.pop(key, None)  # only what the form sets
    env.update(extra)
    return env


def _flush_redis(url: str) -> None:
    """Empty the bench's own Redis database (and only that one)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        raise FormUnavailable(f"Redis at {url}: {exc}") from exc


def loom_serve(processes: int, redis: bool) -> Callable[[Backend], AbstractContextManager[Started]]:
    """``loom serve``; with ``processes > 1`` uvicorn's worker processes are its children."""

    @contextmanager
    def start(backend: Backend) -> Iterator[Started]:
        port = _free_port()
        extra: dict[str, str] = {}
        if processes > 1:  # LOOM_PROCESSES is the new name, LOOM_WORKERS the one today
            extra |= {"LOOM_PROCESSES": str(processes), "LOOM_WORKERS": str(processes)}
        if redis:
            _flush_redis(backend.redis_url)
            extra["LOOM_REDIS_URL"] = backend.redis_url
        env = _loom_env(backend, port, **extra)
        name = f"loom-serve-{processes}"
        argv = [PY, "-m", "loom", "serve"]
        with _process(name, "loom serve", argv, env, backend.log_dir) as child:
            _wait_for_port(port, [child])
            yield f"http://127.0.0.1:{port}", [child.pid]

    return start


def loom_api_and_workers(workers: int) -> Callable[[Backend], AbstractContextManager[Started]]:
    """One ``loom serve --no-worker`` and ``workers`` separate ``loom worker`` processes."""

    @contextmanager
    def start(backend: Backend) -> Iterator[Started]:
        _flush_redis(backend.redis_url)
        port = _free_port()
        env = _loom_env(backend, port, LOOM_REDIS_URL=backend.redis_url)
        with ExitStack() as stack:
            what = "loom serve --no-worker"
            argv = [PY, "-m", "loom", "serve", "--no-worker"]
            api = stack.enter_context(_process("loom-api", what, argv, env, backend.log_dir))
            _wait_for_port(port, [api])  # the API has applied the migrations by now
            argv = [PY, "-m", "loom", "worker"]
            children = [api] + [
                stack.enter_context(
                    _process(f"loom-worker-{i}", "loom worker", argv, env, backend.log_dir)
                )
                for i in range(workers)
            ]
            _still_alive(children, grace=2.0)
            yield f"http://127.0.0.1:{port}", [c.pid for c in children]

    return start


FORMS: dict[str, Form] = {
    "floor": Form("floor", "naive", "naive server: FastAPI + MessagesState + saver", naive_floor),
    "serve": Form("serve", "loom", "loom serve (1 process)", loom_serve(1, redis=False)),
    "serve2": Form(
        "serve2",
        "loom",
        "LOOM_PROCESSES=2 (LOOM_WORKERS=2) + LOOM_REDIS_URL loom serve",
        loom_serve(2, redis=True),
    ),
    "api+2workers": Form(
        "api+2workers",
        "loom",
        "loom serve --no-worker + 2 x loom worker, LOOM_REDIS_URL",
        loom_api_and_workers(2),
    ),
}


# --- CPU ---------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes and all their live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in {d for p in pids for d in _descendants(p)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            continue
    return total
