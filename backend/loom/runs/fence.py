"""Fencing a worker's checkpoint writes by its claim on the run.

A worker that lost a run's lease must not write the run's checkpoints any more: another worker
may be executing the run from its last checkpoint. The worker revokes the claim token of every
run it stops for a lost lease (a heartbeat that found the token gone, or failed, or a lease
it could not renew in time), and :class:`FencedSaver` refuses checkpoint writes made under a
revoked token. The token travels in the run's config as ``__loom_claim`` (keys starting with
``__`` are never copied into checkpoint metadata).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

CLAIM_KEY = "__loom_claim"


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


class FencedSaver(AsyncPostgresSaver):
    """The stock Postgres saver, refusing writes under a revoked claim."""

    def __init__(self, *args: Any, fence: ClaimFence, **kwargs: Any) -> None:
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
        await super().aput_writes(config, writes, task_id, task_path)
