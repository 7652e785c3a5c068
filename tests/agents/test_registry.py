"""Agent types: one module each, registered once, and the config schema derived from them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any, get_args

import pytest
from langchain_core.messages import BaseMessage

import loom.agents.types
from loom.agents.config import OptionalField
from loom.agents.graphs import CompiledGraph, GraphParts
from loom.agents.models import default_model_registry
from loom.agents.registry import (
    AgentFactory,
    AgentTypeRegistry,
    default_agent_types,
    default_factory,
)
from loom.agents.types.base import AgentType
from loom.runs.schemas import config_schema
from loom.settings import Settings
from loom.tools.registry import default_tool_registry

TYPE_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(loom.agents.types.__path__) if m.name != "base"
)


def _settings() -> Settings:
    return Settings(database_url="postgresql://unused", openai_api_key="k")  # type: ignore[arg-type]


def _configurable(factory: AgentFactory) -> dict[str, Any]:
    props: dict[str, Any] = config_schema(factory)["properties"]["configurable"]["properties"]
    return props


def test_every_registered_type_is_its_own_module() -> None:
    types = default_agent_types()
    ids = [t.id for t in types]
    assert len(set(ids)) == len(ids)
    for agent_type in types:
        module = importlib.import_module(f"loom.agents.types.{agent_type.id}")
        assert module.AGENT_TYPE is agent_type
        assert agent_type.build.__module__ == module.__name__
    # ... and every type module is registered
    assert sorted(ids) == TYPE_MODULES


def test_the_builtin_types() -> None:
    by_id = {t.id: t for t in default_agent_types()}
    assert list(by_id) == ["agent", "chatbot", "chat_retrieval"]
    assert by_id["agent"].model_fields == ("agent_type", "llm_type", "model")
    assert by_id["chatbot"].model_fields == ("llm_type", "agent_type", "model")
    assert by_id["chat_retrieval"].model_fields == ("llm_type", "agent_type", "model")
    assert [t.id for t in by_id.values() if t.uses_tools] == ["agent"]
    assert [t.id for t in by_id.values() if t.values_as_list] == ["agent", "chatbot"]


def test_a_type_is_registered_once() -> None:
    [first, *_] = default_agent_types()
    with pytest.raises(ValueError, match="registered twice"):
        AgentTypeRegistry([first, first])


def _echo_build(parts: GraphParts) -> CompiledGraph:
    raise AssertionError("not built in these tests")


def _echo_node(messages: Sequence[BaseMessage]) -> str:
    return "echo"


def _echo(**extra: Any) -> AgentType:
    values: dict[str, Any] = {
        "id": "echo",
        "name": "Echo",
        "description": "Says it back.",
        "build": _echo_build,
        "values_as_list": True,
        "update_node": _echo_node,
        "model_fields": ("bot_model", "model"),
        "config_fields": frozenset({"tools", "recursion_limit"}),
    }
    values.update(extra)
    return AgentType(**values)


def test_an_agent_type_must_read_the_plain_model_field() -> None:
    with pytest.raises(ValueError, match="must include 'model'"):
        _echo(model_fields=("bot_model",))
    with pytest.raises(ValueError, match="id"):
        _echo(id="a/b")
    assert _echo().uses_tools
    assert not _echo(config_fields=frozenset()).uses_tools


def test_the_schema_hints_come_from_the_types() -> None:
    factory = default_factory(_settings(), None)
    types = factory.agent_types.all()
    props = _configurable(factory)
    hinted = {name for name, prop in props.items() if "x-applies-to" in prop}
    assert hinted == set(get_args(OptionalField))
    for name in hinted:
        assert props[name]["x-applies-to"] == [t.id for t in types if name in t.config_fields]
    assert props["model"]["x-model-fields"] == {t.id: list(t.model_fields) for t in types}
    # what the UI has relied on so far
    assert props["tools"]["x-applies-to"] == ["agent"]
    assert props["interrupt_before_action"]["x-applies-to"] == ["agent"]
    assert props["recursion_limit"]["x-applies-to"] == ["agent"]
    assert props["retrieval_description"]["x-applies-to"] == ["agent", "chat_retrieval"]
    assert props["model"]["x-model-fields"] == {
        "agent": ["agent_type", "llm_type", "model"],
        "chatbot": ["llm_type", "agent_type", "model"],
        "chat_retrieval": ["llm_type", "agent_type", "model"],
    }
    assert props["type"]["enum"] == [t.id for t in types]


def test_a_new_type_needs_nothing_but_its_value() -> None:
    settings = _settings()
    factory = AgentFactory(
        settings,
        AgentTypeRegistry([*default_agent_types(), _echo()]),
        default_model_registry(),
        default_tool_registry(),
        None,
    )
    props = _configurable(factory)
    assert props["type"]["enum"][-1] == "echo"
    assert props["type"]["x-enum-labels"]["echo"] == "Echo"
    assert props["tools"]["x-applies-to"] == ["agent", "echo"]
    assert props["recursion_limit"]["x-applies-to"] == ["agent", "echo"]
    assert props["interrupt_before_action"]["x-applies-to"] == ["agent"]
    assert props["model"]["x-model-fields"]["echo"] == ["bot_model", "model"]

    # its model field is read in both spellings, the prefixed one first
    conf = {"type": "echo", "type==echo/bot_model": "GPT 4o", "model": "gpt-3.5-turbo"}
    assert factory.resolve({"configurable": conf}).model.id == "gpt-4o"
    assert factory.resolve({"configurable": {"type": "echo", "bot_model": "GPT 4o"}}).model.id == (
        "gpt-4o"
    )
    # another type's model field is not one of its own
    resolved = factory.resolve({"configurable": {"type": "echo", "llm_type": "GPT 4o"}})
    assert resolved.model.id == settings.default_model
    resolved = factory.resolve({"configurable": {"type": "echo", "tools": [{"type": "wikipedia"}]}})
    assert resolved.agent_type.uses_tools
