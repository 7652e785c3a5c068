"""Starting runs: validate the request against the thread, record the run, hand it on."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loom.agents.config import ConfigError
from loom.agents.state import with_ids
from loom.auth import User
from loom.errors import InvalidInput, NotFound
from loom.resources import Resources
from loom.runs.executor import RunJob
from loom.storage.runs import Run
from loom.validation import storable

# Per-run config may not say who is running what where.
_IDENTITY_KEYS = frozenset({"thread_id", "assistant_id", "user_id", "run_id", "checkpoint_ns"})
MAX_RECURSION_LIMIT = 200


class RunIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: uuid.UUID
    assistant_id: uuid.UUID | None = None
    input: list[Any] | dict[str, Any] | None = Field(
        default=None,
        description='{"messages": [...]} or a bare list of messages; null continues a paused run',
    )
    config: dict[str, Any] | None = None

    @field_validator("input", "config")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value, "the value")


def decode_input(value: list[Any] | dict[str, Any] | None) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if "messages" not in value:
            raise InvalidInput('input must be {"messages": [...]}, a list of messages, or null')
        value = value["messages"]
        if value is None:
            return None
    if not isinstance(value, list):
        raise InvalidInput("input.messages must be a list")
    try:
        return with_ids(value)
    except ValueError as exc:
        raise InvalidInput(f"Invalid input: {exc}") from exc


def _run_options(config: dict[str, Any] | None, default_limit: int) -> tuple[int, str | None]:
    config = config or {}
    configurable = config.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise InvalidInput("config.configurable must be an object")
    forbidden = sorted(_IDENTITY_KEYS & configurable.keys())
    if forbidden:
        raise InvalidInput(f"config.configurable may not set {', '.join(forbidden)}")
    limit = config.get("recursion_limit", default_limit)
    if (
        not isinstance(limit, int)
        or isinstance(limit, bool)
        or not 2 <= limit <= MAX_RECURSION_LIMIT
    ):
        raise InvalidInput(
            f"config.recursion_limit must be an integer from 2 to {MAX_RECURSION_LIMIT}"
        )
    checkpoint_id = configurable.get("checkpoint_id")
    if checkpoint_id is not None and not isinstance(checkpoint_id, str):
        raise InvalidInput("config.configurable.checkpoint_id must be a string")
    return limit, checkpoint_id


async def start_run(res: Resources, user: User, body: RunIn) -> Run:
    """Validate, record and submit a run; answers at once with its record."""
    thread = await res.threads.get_own(user.user_id, body.thread_id)
    if thread is None:
        raise NotFound("Thread not found")
    if thread.assistant_id is None:
        raise InvalidInput("The thread has no assistant (it was deleted); choose another one")
    if body.assistant_id is not None and body.assistant_id != thread.assistant_id:
        raise InvalidInput("assistant_id does not match the thread's assistant")
    assistant = await res.assistants.get_visible(user.user_id, thread.assistant_id)
    if assistant is None:
        raise InvalidInput("The thread's assistant is no longer available")
    try:
        resolved = res.factory.resolve(assistant.config)
    except ConfigError as exc:
        raise InvalidInput(f"The assistant's config is no longer valid: {exc}") from exc
    messages = decode_input(body.input)
    default_limit = resolved.config.recursion_limit or res.settings.recursion_limit
    limit, checkpoint_id = _run_options(body.config, default_limit)
    stored_input = None if messages is None else [m.model_dump(mode="json") for m in messages]
    run = await res.runs.create(
        user.user_id, thread.thread_id, thread.assistant_id, stored_input, body.config or {}
    )
    await res.executor.submit(
        RunJob(
            run=run,
            assistant_config=assistant.config,
            input_messages=messages,
            recursion_limit=limit,
            checkpoint_id=checkpoint_id,
        )
    )
    return run
