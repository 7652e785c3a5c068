"""Fencing a worker's checkpoint writes by its claim on the run.

A worker that lost a run's lease must not write the run's checkpoints any more: another worker
may be executing the run from its last checkpoint. The worker revokes the claim token of every
run it stops for a lost lease (a heartbeat that found the token gone, or failed, or a lease it
could not renew in time), and the saver (:class:`loom.storage.checkpoints.LoomSaver`) refuses
checkpoint writes made under a revoked token. The token travels in the run's config as
``__loom_claim`` (keys starting with ``__`` are never copied into checkpoint metadata).
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

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
