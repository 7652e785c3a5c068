"""What a Loom process opens, whatever it serves: ``open_runtime(settings)``.

Both ``loom serve`` (through the app's lifespan) and ``loom worker`` open a :class:`Runtime`:
the database (the embedded Postgres when no URL is configured), migrations, the pool,
LangGraph's checkpointer, the repositories, the agent factory, retrieval, the run queue, the
event broker and the wake-up channel (Redis when ``LOOM_REDIS_URL`` is set, else in-process
logs and Postgres ``LISTEN``/``NOTIFY``). No web framework here.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from loom.agents.registry import AgentFactory, default_factory
from loom.agents.state import state_channels
from loom.db.embedded import start_embedded
from loom.db.migrate import prepare_schema
from loom.db.pool import open_pool
from loom.db.types import Pool
from loom.metrics import Metrics
from loom.providers import open_provider_http
from loom.retrieval import open_retrieval
from loom.retrieval.ingest import IngestService
from loom.runs.broker import Broker, LocalBroker
from loom.runs.executor import RunExecutor
from loom.runs.fence import ClaimFence
from loom.runs.queue import RunQueue
from loom.runs.redis_broker import RedisBroker
from loom.runs.wakeup import PgWakeup, RedisWakeup, Wakeup
from loom.runs.worker import Worker, WorkerOptions
from loom.settings import Settings
from loom.storage.api_keys import ApiKeyRepo
from loom.storage.assistants import AssistantRepo
from loom.storage.checkpoints import LoomSaver
from loom.storage.runs import RunRepo
from loom.storage.threads import ThreadRepo
from loom.tracing import Tracing, open_tracing

log = logging.getLogger("loom")


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    pool: Pool
    checkpointer: LoomSaver
    assistants: AssistantRepo
    threads: ThreadRepo
    runs: RunRepo
    api_keys: ApiKeyRepo
    factory: AgentFactory
    ingest: IngestService
    queue: RunQueue
    broker: Broker
    wakeup: Wakeup
    executor: RunExecutor
    fence: ClaimFence
    metrics: Metrics
    tracing: Tracing
    redis: redis.Redis | None = None

    def worker(self) -> Worker:
        """A worker over this runtime's queue (started by whoever runs it)."""
        s = self.settings
        return Worker(
            queue=self.queue,
            executor=self.executor,
            broker=self.broker,
            wakeup=self.wakeup,
            fence=self.fence,
            metrics=self.metrics,
            tracing=self.tracing,
            options=WorkerOptions(
                concurrency=s.worker_concurrency,
                poll_seconds=s.worker_poll_seconds,
                heartbeat_seconds=s.heartbeat_seconds,
                sweep_seconds=s.sweep_seconds,
                drain_seconds=s.drain_seconds,
            ),
        )


async def open_redis(settings: Settings, stack: AsyncExitStack) -> redis.Redis | None:
    if not settings.redis_url:
        return None
    client: redis.Redis = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        # A connection left over from before a Redis restart fails once: reconnect and retry.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    stack.push_async_callback(client.aclose)
    try:
        await client.ping()
    except Exception as exc:
        # Not fatal: runs still execute and finish (their outcome is in Postgres); streams
        # and wake-ups recover when Redis is back.
        log.warning("Redis at LOOM_REDIS_URL is not answering yet (%r)", exc)
    return client


async def open_runtime(settings: Settings, stack: AsyncExitStack) -> Runtime:
    """Open everything a Loom process needs; ``stack`` closes it in reverse order."""
    url = settings.database_url
    if url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        stack.callback(embedded.stop)
        url = embedded.uri()
    pool = await open_pool(url, settings)
    stack.push_async_callback(pool.close)
    fence = ClaimFence()
    channels = state_channels(settings.checkpoint_snapshot_frequency)
    checkpointer = LoomSaver(pool, fence=fence, channels=channels)
    async with pool.connection() as conn:
        await prepare_schema(conn, checkpointer.setup)

    metrics = Metrics()
    tracing = open_tracing(settings)
    stack.callback(tracing.shutdown)
    http = open_provider_http(settings, stack)
    retriever, ingest = await open_retrieval(settings, pool, stack, metrics, http)
    factory = default_factory(
        settings, checkpointer, retriever=retriever, http=http, channels=channels
    )
    queue = RunQueue(pool, settings.lease_seconds, settings.run_max_attempts)

    client = await open_redis(settings, stack)
    broker: Broker
    wakeup: Wakeup
    if client is not None:
        broker = RedisBroker(
            client, prefix=settings.redis_prefix, ttl_after_end=settings.stream_ttl_seconds
        )
        wakeup = RedisWakeup(client, prefix=settings.redis_prefix)
    else:
        broker = LocalBroker(keep_seconds=settings.stream_ttl_seconds)
        wakeup = PgWakeup(url, pool)
    await wakeup.start()
    stack.push_async_callback(wakeup.aclose)
    stack.push_async_callback(broker.aclose)

    return Runtime(
        settings=settings,
        database_url=url,
        pool=pool,
        checkpointer=checkpointer,
        assistants=AssistantRepo(pool),
        threads=ThreadRepo(pool),
        runs=RunRepo(pool),
        api_keys=ApiKeyRepo(pool),
        factory=factory,
        ingest=ingest,
        queue=queue,
        broker=broker,
        wakeup=wakeup,
        executor=RunExecutor(factory, checkpointer, queue, broker, metrics),
        fence=fence,
        metrics=metrics,
        tracing=tracing,
        redis=client,
    )


def describe(runtime: Runtime) -> dict[str, Any]:
    """What this process is wired to (for logs)."""
    return {
        "broker": type(runtime.broker).__name__,
        "wakeup": type(runtime.wakeup).__name__,
        "lease_seconds": runtime.settings.lease_seconds,
    }
