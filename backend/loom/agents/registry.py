"""The agent-type registry, and turning a stored assistant config into a compiled graph.

Agent types are keyed by the stable ids OpenGPTs uses (``chatbot``, ``agent``,
``chat_retrieval``); each is one module under :mod:`loom.agents.types`, listed by
:func:`default_agent_types`. :class:`AgentFactory` validates configs against the registries
(agent types, models, tools) and caches compiled graphs per config.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, ConfigDict

from loom.agents.client_tools import client_function_tool
from loom.agents.config import (
    DEFAULT_MODEL_FIELDS,
    AssistantConfig,
    ConfigError,
    read_assistant_config,
)
from loom.agents.graphs import CompiledGraph, GraphParts
from loom.agents.models import ModelRegistry, ModelSpec, default_model_registry
from loom.agents.state import make_state_schema, state_channels
from loom.agents.types import agent, chat_retrieval, chatbot
from loom.agents.types.base import AgentType
from loom.settings import Settings
from loom.tools.base import Retriever, ToolContext, ToolSpec
from loom.tools.registry import ToolRegistry, default_tool_registry


class _AnyArgs(BaseModel):
    model_config = ConfigDict(extra="allow")


def _unavailable(spec: ToolSpec[Any], reason: str) -> BaseTool:
    message = f"Error: the {spec.name} tool is not available on this server ({reason})."

    async def answer(**_: Any) -> str:
        return message

    return StructuredTool.from_function(
        coroutine=answer, name=spec.id, description=spec.description, args_schema=_AnyArgs
    )


def default_agent_types() -> list[AgentType]:
    """Loom's agent types, in the order the UI offers them: one line per type module."""
    return [
        agent.AGENT_TYPE,
        chatbot.AGENT_TYPE,
        chat_retrieval.AGENT_TYPE,
    ]


class AgentTypeRegistry:
    def __init__(self, types: Iterable[AgentType]) -> None:
        self._types: dict[str, AgentType] = {}
        for agent_type in types:
            if agent_type.id in self._types:
                raise ValueError(f"agent type {agent_type.id!r} is registered twice")
            self._types[agent_type.id] = agent_type

    def get(self, type_id: str) -> AgentType | None:
        return self._types.get(type_id)

    def all(self) -> list[AgentType]:
        return list(self._types.values())

    def model_fields(self, type_id: str) -> tuple[str, ...]:
        """The fields naming the model for this type (plain ``model`` for an unknown one)."""
        agent_type = self._types.get(type_id)
        return agent_type.model_fields if agent_type else DEFAULT_MODEL_FIELDS


@dataclass(frozen=True)
class ResolvedAssistant:
    config: AssistantConfig
    agent_type: AgentType
    model: ModelSpec


class ToolsAdapter:
    """Adapts the tool registry to the config reader's resolver interface."""

    def __init__(self, tools: ToolRegistry) -> None:
        self._tools = tools

    def normalize(self, entry: object) -> tuple[str, dict[str, Any]]:
        return self._tools.normalize_entry(entry)


class AgentFactory:
    """Validates assistant configs and builds (cached) compiled graphs for them."""

    def __init__(
        self,
        settings: Settings,
        agent_types: AgentTypeRegistry,
        models: ModelRegistry,
        tools: ToolRegistry,
        checkpointer: BaseCheckpointSaver[Any] | None,
        retriever: Retriever | None = None,
        cache_size: int = 256,
        http: httpx2.AsyncClient | None = None,
        channels: Mapping[str, DeltaChannel[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self._http = http
        self.agent_types = agent_types
        self.models = models
        self.tools = tools
        self._checkpointer = checkpointer
        self._retriever = retriever
        self._state_schema = make_state_schema(
            channels or state_channels(settings.checkpoint_snapshot_frequency)
        )
        self._cache: OrderedDict[str, CompiledGraph] = OrderedDict()
        self._cache_size = cache_size

    def resolve(self, config: Mapping[str, Any]) -> ResolvedAssistant:
        """Validate a config; :class:`ConfigError` says what is wrong."""
        if not isinstance(config, Mapping):
            raise ConfigError("config must be an object")
        parsed = read_assistant_config(
            config, ToolsAdapter(self.tools), self.agent_types.model_fields
        )
        agent_type = self.agent_types.get(parsed.type)
        if agent_type is None:
            known = ", ".join(t.id for t in self.agent_types.all())
            raise ConfigError(f"unknown agent type {parsed.type!r} (known: {known})")
        model_name = parsed.model or self.settings.default_model
        model = self.models.resolve(model_name)
        if model is None:
            known = ", ".join(m.id for m in self.models.all())
            raise ConfigError(f"unknown model {model_name!r} (known: {known})")
        if (parsed.tools or parsed.functions) and not agent_type.uses_tools:
            raise ConfigError(f"agent type {agent_type.id!r} does not use tools")
        for ref in parsed.tools:
            spec = self.tools.resolve(ref.id)
            assert spec is not None
            try:
                spec.validate_config(ref.config)
            except ValueError as exc:
                raise ConfigError(f"tool {ref.id}: {exc}") from exc
        return ResolvedAssistant(parsed, agent_type, model)

    def graph(self, config: Mapping[str, Any]) -> tuple[CompiledGraph, ResolvedAssistant]:
        resolved = self.resolve(config)
        key = json.dumps(config, sort_keys=True, default=str)
        graph = self._cache.get(key)
        if graph is None:
            graph = self._build(resolved)
            self._cache[key] = graph
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return graph, resolved

    def _build(self, resolved: ResolvedAssistant) -> CompiledGraph:
        if self._checkpointer is None:
            raise RuntimeError("AgentFactory was created without a checkpointer")
        ctx = ToolContext(settings=self.settings, retriever=self._retriever)
        tools: list[BaseTool] = []
        for ref in resolved.config.tools:
            spec = self.tools.get(ref.id)
            reason = spec.unavailable_reason(self.settings)
            # A tool whose key was removed after the assistant was saved: the model is told,
            # rather than every run of the assistant failing.
            tools.append(
                spec.build(ctx, ref.config) if reason is None else _unavailable(spec, reason)
            )
        tools.extend(client_function_tool(f) for f in resolved.config.functions)
        parts = GraphParts(
            state_schema=self._state_schema,
            checkpointer=self._checkpointer,
            model=self.models.build(
                resolved.model, self.settings, dict(resolved.config.model_settings), self._http
            ),
            system_message=resolved.config.system_message,
            tools=tools,
            interrupt_before_action=resolved.config.interrupt_before_action,
            retriever=self._retriever,
            max_retries=self.settings.model_max_retries,
        )
        return resolved.agent_type.build(parts)


def default_factory(
    settings: Settings,
    checkpointer: BaseCheckpointSaver[Any] | None,
    retriever: Retriever | None = None,
    http: httpx2.AsyncClient | None = None,
    channels: Mapping[str, DeltaChannel[Any]] | None = None,
) -> AgentFactory:
    """The factory over Loom's built-in registries (agent types, models, tools); the models
    send their requests through ``http`` (see :meth:`ModelRegistry.build`). ``channels``: the
    state's channels, shared with the checkpointer (:func:`~loom.agents.state.state_channels`;
    by default a set of the factory's own)."""
    return AgentFactory(
        settings,
        AgentTypeRegistry(default_agent_types()),
        default_model_registry(),
        default_tool_registry(),
        checkpointer,
        retriever=retriever,
        http=http,
        channels=channels,
    )
