"""Loom's checkpoint saver: LangGraph's stock Postgres saver, fenced and with memory.

:class:`LoomSaver` stores exactly what the stock ``AsyncPostgresSaver`` stores, through the
stock queries (``langgraph-checkpoint-postgres`` is pinned to the minor version this follows),
and reads the same rows back. What it changes and adds (all but the first in this process's
memory):

* **A checkpoint read that stays flat.** The stock read joins a checkpoint's channel versions
  to ``checkpoint_blobs`` in a way the planner may answer by hashing every blob the thread
  ever stored (one more per turn: 4 ms a read at a thousand turns); :data:`SELECT_CHECKPOINT`
  returns the same rows looking each blob up by its primary key.
* **Fencing.** A checkpoint write under a claim token the worker revoked (it lost the run's
  lease, see :mod:`loom.runs.fence`) is refused.
* **A decoding cache** (:class:`DecodeCache`): a thread's state is rebuilt from the writes
  since its last snapshot whenever it is read from the database (a miss below, a history
  page); each write is decoded once per process, not once per read.
* **Thread heads** (:class:`_Thread`): the history a thread's newest checkpoint replays (the
  snapshot it starts from and the writes since) is kept per thread, and extended with the
  writes and checkpoint this process saves next, so the next turn on the thread reads its
  state without the database walking the checkpoint chain. Anything this process did not see
  (another process moved the thread on, a snapshot, a fork) is simply a miss: the stock query
  answers, and its answer is kept. Any failed write forgets the thread.
* **Folded histories.** For the channels it is given (the state's, shared with the graphs:
  :func:`loom.agents.state.state_channels`), a remembered history is handed out folded: its
  snapshot and writes replayed once, here, exactly as LangGraph replays them, into a seed
  with no writes after it. The next turn's history is that seed plus the turn's own writes,
  so a long thread's turn replays a few messages, not every write since the last snapshot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    DeltaChannelHistory,
    get_checkpoint_id,
    writes_sort_key,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.types.json import Jsonb

from loom.runs.fence import ClaimFence

# The stock read's columns, in its order (``aget_tuple`` and ``alist`` append the WHERE
# clause). Each channel version is looked up by the blob table's primary key: ``OFFSET 0``
# keeps the planner from turning the lookups into one join over all of the thread's blobs.
SELECT_CHECKPOINT = """
select thread_id, checkpoint, checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata,
    (
        select array_agg(array[blob.channel::bytea, blob.type::bytea, blob.blob])
        from jsonb_each_text(checkpoint -> 'channel_versions') as v(channel, version)
        cross join lateral (
            select b.channel, b.type, b.blob from checkpoint_blobs b
            where b.thread_id = checkpoints.thread_id
                and b.checkpoint_ns = checkpoints.checkpoint_ns
                and b.channel = v.channel
                and b.version = v.version
            offset 0
        ) as blob
    ) as channel_values,
    (
        select array_agg(array[
            w.task_id::text::bytea, w.channel::bytea, w.type::bytea, w.blob,
            convert_to(w.task_path, 'UTF8'), w.idx::text::bytea
        ])
        from checkpoint_writes w
        where w.thread_id = checkpoints.thread_id
            and w.checkpoint_ns = checkpoints.checkpoint_ns
            and w.checkpoint_id = checkpoints.checkpoint_id
    ) as pending_writes
from checkpoints """
INLINE_WRITES = 8  # a step's writes up to this many are serialised without a thread hop
_MISSING = object()


class DecodeCache(JsonPlusSerializer):
    """LangGraph's serializer, remembering what it decoded.

    Identical bytes decode to equal values, so a process keeps what it decoded (least recently
    used first out, up to ``max_bytes`` of encoded data) and hands back the same value: a
    thread's old messages are decoded once per process. Encoding is untouched, so what is
    stored is byte for byte what the stock serializer writes.
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


@dataclass
class _Thread:
    """What this process knows of one thread (one checkpoint namespace).

    ``head`` is the newest checkpoint whose replay history (``histories``) is known. A run
    that reads its start through this saver marks its context; every checkpoint and write it
    saves is recorded (checkpoints seen first in a marked run are ``fresh``: all their writes
    are known). The head is extended by a new checkpoint only from a fresh parent, and a write
    from anywhere else (a run that did not read through here) forgets the thread.
    """

    head: str | None = None
    histories: dict[str, DeltaChannelHistory] = field(default_factory=dict)
    # per checkpoint: its super-step's writes (task_path, task_id, idx, channel, value)
    writes: dict[str, list[tuple[str, str, int, str, Any]]] = field(default_factory=dict)
    seen: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)

    def observe(self, checkpoint_id: str) -> None:
        """A checkpoint seen in a marked run (the first sight makes it fresh)."""
        if checkpoint_id in self.writes:
            return
        self.writes[checkpoint_id] = []
        self.seen[checkpoint_id] = set()
        self.fresh.add(checkpoint_id)
        # A thread's steps follow each other: a handful of checkpoints is plenty.
        while len(self.writes) > 16:
            oldest = next(iter(self.writes))
            del self.writes[oldest]
            self.seen.pop(oldest, None)
            self.fresh.discard(oldest)


# The thread memory a run marked when it read its start through this saver (tasks the run
# starts later inherit it).
_MARK: ContextVar[_Thread | None] = ContextVar("loom_saver_run", default=None)


def _copy_history(history: DeltaChannelHistory) -> DeltaChannelHistory:
    out: DeltaChannelHistory = {"writes": list(history["writes"])}
    if "seed" in history:
        out["seed"] = history["seed"]
    return out


class _Threads:
    """Thread memories by (thread, namespace), least recently used first out."""

    def __init__(self, size: int) -> None:
        self._threads: OrderedDict[tuple[str, str], _Thread] = OrderedDict()
        self._size = size

    def get(self, key: tuple[str, str]) -> _Thread | None:
        memory = self._threads.get(key)
        if memory is not None:
            self._threads.move_to_end(key)
        return memory

    def open(self, key: tuple[str, str]) -> _Thread:
        memory = self.get(key)
        if memory is None:
            memory = self._threads[key] = _Thread()
            while len(self._threads) > self._size:
                self._threads.popitem(last=False)
        return memory

    def drop(self, key: tuple[str, str]) -> None:
        self._threads.pop(key, None)

    def drop_thread(self, thread_id: str) -> None:
        for key in [k for k in self._threads if k[0] == thread_id]:
            del self._threads[key]


def _key(config: RunnableConfig) -> tuple[str, str]:
    configurable = config["configurable"]
    return str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))


class LoomSaver(AsyncPostgresSaver):
    """The stock Postgres saver, fenced, decoding through a :class:`DecodeCache`, and
    remembering thread heads."""

    SELECT_SQL = SELECT_CHECKPOINT

    def __init__(
        self,
        *args: Any,
        fence: ClaimFence | None = None,
        threads: int = 1024,
        channels: Mapping[str, DeltaChannel[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("serde", DecodeCache())
        super().__init__(*args, **kwargs)
        self.fence = fence or ClaimFence()
        self._threads = _Threads(threads)
        self._channels = dict(channels or {})  # the channels whose histories are folded
        self.history_hits = 0  # histories answered from memory
        self.history_misses = 0  # and by the database

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        key = _key(config)
        checkpoint_id = get_checkpoint_id(config)
        memory = self._threads.get(key)
        if (
            memory is not None
            and checkpoint_id is not None
            and memory.head == checkpoint_id
            and all(ch in memory.histories for ch in channels)
        ):
            _MARK.set(memory)
            self.history_hits += 1
            return {ch: _copy_history(self._folded(memory, ch)) for ch in channels}
        self.history_misses += 1
        found = await super().aget_delta_channel_history(config=config, channels=channels)
        if checkpoint_id and channels and all(ch in found for ch in channels):
            memory = self._threads.open(key)
            memory.head = checkpoint_id
            memory.histories = {ch: _copy_history(found[ch]) for ch in channels}
            _MARK.set(memory)
        return found

    def _folded(self, memory: _Thread, channel: str) -> DeltaChannelHistory:
        """The channel's remembered history with its writes replayed into its seed (kept so),
        when this saver folds the channel and there is anything to fold."""
        history = memory.histories[channel]
        spec = self._channels.get(channel)
        if spec is None or not history["writes"]:
            return history
        # What LangGraph does with a history (``_replay`` in ``langgraph.pregel._checkpoint``).
        # (No seed: the channel starts empty, as from ``None``.)
        rebuilt = spec.from_checkpoint(history.get("seed"))
        rebuilt.replay_writes(history["writes"])
        folded: DeltaChannelHistory = {"seed": _DeltaSnapshot(rebuilt.get()), "writes": []}
        memory.histories[channel] = folded
        return folded

    def _marked(self, key: tuple[str, str]) -> _Thread | None:
        """The thread's memory, if the current run marked it; a write from anywhere else
        makes the memory untrustworthy: it is forgotten."""
        memory = self._threads.get(key)
        if memory is None:
            return None
        if _MARK.get() is not memory:
            self._threads.drop(key)
            return None
        return memory

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.fence.check(config)
        key = _key(config)
        new_id = str(checkpoint["id"])
        memory = self._marked(key)
        if memory is not None:
            memory.observe(new_id)
            self._advance(memory, get_checkpoint_id(config), new_id, checkpoint)
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        except BaseException:
            self._threads.drop(key)
            raise

    @staticmethod
    def _advance(memory: _Thread, parent: str | None, new_id: str, checkpoint: Checkpoint) -> None:
        """Make ``new_id`` the head if it follows the head from a tracked parent."""
        if parent is None or memory.head != parent or parent not in memory.fresh:
            return
        values = checkpoint.get("channel_values") or {}
        if any(ch in values for ch in memory.histories):
            memory.head = None  # a snapshot: the next read starts from it
            return
        ordered = sorted(memory.writes[parent], key=lambda w: writes_sort_key(w[0], w[1], w[2]))
        histories: dict[str, DeltaChannelHistory] = {}
        for ch, history in memory.histories.items():
            grown = _copy_history(history)
            grown["writes"].extend((w[1], ch, w[4]) for w in ordered if w[3] == ch)
            histories[ch] = grown
        memory.head = new_id
        memory.histories = histories

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.fence.check(config)
        # The stock method's query and rows (it serialises in a worker thread; a step's few
        # writes serialise faster than the thread hop costs).
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
        key = _key(config)
        self._remember(key, str(configurable["checkpoint_id"]), task_id, task_path, params)
        try:
            async with self._cursor(pipeline=True) as cur:
                await cur.executemany(query, params)
        except BaseException:
            self._threads.drop(key)
            raise

    def _remember(
        self,
        key: tuple[str, str],
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        params: Sequence[tuple[Any, ...]],
    ) -> None:
        memory = self._marked(key)
        if memory is None:
            return
        memory.observe(checkpoint_id)
        recorded, seen = memory.writes[checkpoint_id], memory.seen[checkpoint_id]
        for row in params:
            idx, channel, type_, blob = row[5], row[6], row[7], row[8]
            if channel in WRITES_IDX_MAP or (task_id, idx) in seen:
                continue  # special writes are not channel values; a repeat is not stored
            seen.add((task_id, idx))
            # What a read of the stored row gives (the decode cache makes it the same value).
            recorded.append(
                (task_path, task_id, idx, channel, self.serde.loads_typed((type_, blob)))
            )

    async def list_metadata(
        self,
        thread_id: str,
        limit: int,
        before: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """A thread's checkpoints, newest first, as their ids, parents, metadata and times
        only: what ``alist`` would list, without reading (or decoding) any channel value."""
        async with self._cursor() as cur:
            await cur.execute(
                "SELECT checkpoint_id, parent_checkpoint_id, metadata, checkpoint->>'ts' AS ts"
                " FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
                " AND (%s::text IS NULL OR checkpoint_id < %s)"
                " AND (%s::jsonb IS NULL OR metadata @> %s::jsonb)"
                " ORDER BY checkpoint_id DESC LIMIT %s",
                (
                    thread_id,
                    before,
                    before,
                    Jsonb(metadata) if metadata else None,
                    Jsonb(metadata) if metadata else None,
                    limit,
                ),
            )
            return list(await cur.fetchall())

    async def adelete_thread(self, thread_id: str) -> None:
        self._threads.drop_thread(str(thread_id))
        await super().adelete_thread(thread_id)
