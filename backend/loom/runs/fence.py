"""Fencing a worker's checkpoint writes by its claim on the run (and the saver that does it).

A worker that lost a run's lease must not write the run's checkpoints any more: another worker
may be executing the run from its last checkpoint. The worker revokes the claim token of every
run it stops for a lost lease (a heartbeat that found the token gone, or failed, or a lease
it could not renew in time), and :class:`FencedSaver` refuses checkpoint writes made under a
revoked token. The token travels in the run's config as ``__loom_claim`` (keys starting with
``__`` are never copied into checkpoint metadata).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

CLAIM_KEY = "__loom_claim"
INLINE_WRITES = 8  # a step's writes up to this many are serialised without a thread hop


class LeaseLost(Exception):
    """A checkpoint write of a run whose lease this worker lost."""


class ClaimFence:
    def __init__(self) -> None:
        self._revoked: set[str] = set()

    def revoke(self, token: object) -> None:
        self._revoked.add(str(token))

    def forget(self, token: object) -> None:
        self._revoked.discard(str(token))

    def check(self, config: RunnableConfig) -> None:
        token = (config.get("configurable") or {}).get(CLAIM_KEY)
        if token is not None and str(token) in self._revoked:
            raise LeaseLost("this worker no longer holds the run")


class DecodeCache(JsonPlusSerializer):
    """LangGraph's serializer, remembering what it decoded.

    With ``DeltaChannel`` every turn rebuilds a thread's messages from the writes since the
    last snapshot, decoding each of them again: on a thread of a thousand turns, most of a
    turn's time. Identical bytes decode to equal values, so a process keeps what it decoded
    (least recently used first out, up to ``max_bytes`` of encoded data) and hands back the
    same value: a thread's old messages are decoded once per process. Encoding is untouched,
    so what is stored is byte for byte what the stock serializer writes.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, min_size: int = 16) -> None:
        super().__init__()
        self._values: OrderedDict[bytes, Any] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._min_size = min_size

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, blob = data
        if type_ != "msgpack" or len(blob) < self._min_size:
            return super().loads_typed(data)
        key = bytes(blob)
        values = self._values
        found = values.get(key, _MISSING)
        if found is not _MISSING:
            values.move_to_end(key)
            return found
        value = super().loads_typed(data)
        values[key] = value
        self._bytes += len(key)
        while self._bytes > self._max_bytes and values:
            old, _ = values.popitem(last=False)
            self._bytes -= len(old)
        return value


_MISSING = object()


class FencedSaver(AsyncPostgresSaver):
    """The stock Postgres saver, refusing writes under a revoked claim, decoding through a
    :class:`DecodeCache`."""

    def __init__(self, *args: Any, fence: ClaimFence, **kwargs: Any) -> None:
        kwargs.setdefault("serde", DecodeCache())
        super().__init__(*args, **kwargs)
        self.fence = fence

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.fence.check(config)
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.fence.check(config)
        if len(writes) > INLINE_WRITES:
            await super().aput_writes(config, writes, task_id, task_path)
            return
        # The stock method serialises the writes in a worker thread; a step's few writes
        # (a message or two) serialise faster than the thread hop costs. Same queries, same
        # rows (langgraph-checkpoint-postgres is pinned to the minor version this follows).
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)
