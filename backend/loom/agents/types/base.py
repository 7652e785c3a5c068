"""What an agent type is: one value that says everything Loom needs to know about it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langchain_core.messages import BaseMessage

from loom.agents.config import DEFAULT_MODEL_FIELDS, OptionalField
from loom.agents.graphs import GraphBuilder


@dataclass(frozen=True)
class AgentType:
    # The stable id stored in assistant configs (``configurable.type``; OpenGPTs' names).
    id: str
    # Display name and one-line description (the UI's type picker).
    name: str
    description: str
    build: GraphBuilder
    # OpenGPTs answers thread state as a bare message list for these, else {"messages": [...]}
    values_as_list: bool
    # The node a client's state update is recorded as (so a plain update leaves next = []).
    update_node: Callable[[Sequence[BaseMessage]], str]
    # The fields that may name the model, in the order they are read (the first set one wins).
    # OpenGPTs wrote ``agent_type`` for the agent bot and ``llm_type`` for the others.
    model_fields: tuple[str, ...] = DEFAULT_MODEL_FIELDS
    # The optional config fields this type uses (the config schema's ``x-applies-to``).
    config_fields: frozenset[OptionalField] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"agent type id {self.id!r}: must be non-empty, without '/'")
        if "model" not in self.model_fields:
            raise ValueError(f"agent type {self.id}: model_fields must include 'model'")
        if len(set(self.model_fields)) != len(self.model_fields):
            raise ValueError(f"agent type {self.id}: model_fields has duplicates")

    @property
    def uses_tools(self) -> bool:
        return "tools" in self.config_fields
