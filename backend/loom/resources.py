"""The resources the app's lifespan opens and hands to every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from loom.agents.registry import AgentFactory
from loom.auth import Authenticator
from loom.db.types import Pool
from loom.retrieval.ingest import IngestService
from loom.runs.broker import Broker
from loom.runs.executor import Executor
from loom.settings import Settings
from loom.storage.assistants import AssistantRepo
from loom.storage.runs import RunRepo
from loom.storage.threads import ThreadRepo


@dataclass
class Resources:
    """What the lifespan opened, handed to every request."""

    settings: Settings
    pool: Pool
    http: httpx.AsyncClient
    auth: Authenticator
    assistants: AssistantRepo
    threads: ThreadRepo
    runs: RunRepo
    factory: AgentFactory
    broker: Broker
    executor: Executor
    checkpointer: Any
    ingest: IngestService | None = None
