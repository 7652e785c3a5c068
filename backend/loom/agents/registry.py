"""The agent-type registry, and turning a stored assistant config into a compiled graph.

Agent types are keyed by the stable ids OpenGPTs uses (``chatbot``, ``agent``,
``chat_retrieval``). :class:`AgentFactory` validates configs against the registries (agent
types, models, tools) and caches compiled graphs per config.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, ConfigDict

from loom.agents.config import AssistantConfig, ConfigError, read_assistant_config
from loom.agents.graphs import (
    CompiledGraph,
    GraphBuilder,
    GraphParts,
    build_agent,
    build_chat_retrieval,
    build_chatbot,
)
from loom.agents.models import ModelRegistry, ModelSpec, default_model_registry
from loom.agents.state import make_state_schema
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


def _ends_with(node: str) -> Callable[[Sequence[BaseMessage]], str]:
    return lambda _messages: node


def _agent_update_node(messages: Sequence[BaseMessage]) -> str:
    # Tool results posted by a client (e.g. rejecting a pending call) count as the action
    # node's output, so a run with input null goes back to the model.
    if messages and isinstance(messages[-1], ToolMessage):
        return "action"
    return "agent"


@dataclass(frozen=True)
class AgentType:
    id: str
    name: str
    description: str
    build: GraphBuilder
    # OpenGPTs answers thread state as a bare message list for these, else {"messages": [...]}
    values_as_list: bool
    # The node a client's state update is recorded as (so a plain update leaves next = []).
    update_node: Callable[[Sequence[BaseMessage]], str]
    uses_tools: bool = False


def default_agent_types() -> list[AgentType]:
    return [
        AgentType(
            "agent",
            "Agent (tools)",
            "Calls tools in a loop until it can answer; may ask before using a tool.",
            build_agent,
            values_as_list=True,
            update_node=_agent_update_node,
            uses_tools=True,
        ),
        AgentType(
            "chatbot",
            "Chatbot",
            "Answers from the conversation and its instructions alone.",
            build_chatbot,
            values_as_list=True,
            update_node=_ends_with("chatbot"),
        ),
        AgentType(
            "chat_retrieval",
            "RAG bot",
            "Searches the documents uploaded to the assistant and the thread before answering.",
            build_chat_retrieval,
            values_as_list=False,
            update_node=_ends_with("response"),
        ),
    ]


class AgentTypeRegistry:
    def __init__(self, types: Iterable[AgentType]) -> None:
        self._types = {t.id: t for t in types}

    def get(self, type_id: str) -> AgentType | None:
        return self._types.get(type_id)

    def all(self) -> list[AgentType]:
        return list(self._types.values())


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
    ) -> None:
        self.settings = settings
        self.agent_types = agent_types
        self.models = models
        self.tools = tools
        self._checkpointer = checkpointer
        self._retriever = retriever
        self._state_schema = make_state_schema(settings.checkpoint_snapshot_frequency)
        self._cache: OrderedDict[str, CompiledGraph] = OrderedDict()
        self._cache_size = cache_size

    def resolve(self, config: Mapping[str, Any]) -> ResolvedAssistant:
        """Validate a config; :class:`ConfigError` says what is wrong."""
        if not isinstance(config, Mapping):
            raise ConfigError("config must be an object")
        parsed = read_assistant_config(config, ToolsAdapter(self.tools))
        agent_type = self.agent_types.get(parsed.type)
        if agent_type is None:
            known = ", ".join(t.id for t in self.agent_types.all())
            raise ConfigError(f"unknown agent type {parsed.type!r} (known: {known})")
        model_name = parsed.model or self.settings.default_model
        model = self.models.resolve(model_name)
        if model is None:
            known = ", ".join(m.id for m in self.models.all())
            raise ConfigError(f"unknown model {model_name!r} (known: {known})")
        if parsed.tools and not agent_type.uses_tools:
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
        parts = GraphParts(
            state_schema=self._state_schema,
            checkpointer=self._checkpointer,
            model=self.models.build(resolved.model, self.settings),
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
) -> AgentFactory:
    """The factory over Loom's built-in registries (agent types, models, tools)."""
    return AgentFactory(
        settings,
        AgentTypeRegistry(default_agent_types()),
        default_model_registry(),
        default_tool_registry(),
        checkpointer,
        retriever=retriever,
    )
