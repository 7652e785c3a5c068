"""Per-run overrides, client-side function entries and model settings in assistant configs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from loom.agents.config import ConfigError, with_overrides
from loom.agents.registry import AgentFactory, default_factory
from loom.settings import Settings
from loom.storage.namespaces import is_namespace, namespace

FUNCTION = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look it up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def factory() -> AgentFactory:
    settings = Settings(database_url="postgresql://unused", openai_api_key="k")  # type: ignore[arg-type]
    return default_factory(settings, None)


def _resolve(factory: AgentFactory, **conf: Any) -> Any:
    return factory.resolve({"configurable": {"type": "agent", **conf}}).config


def test_overrides_hide_prefixed_keys(factory: AgentFactory) -> None:
    stored = {
        "configurable": {
            "type": "agent",
            "type==agent/system_message": "stored",
            "type==agent/agent_type": "GPT 4o",
            "type==agent/tools": ["Wikipedia"],
        }
    }
    merged = with_overrides(stored, {"system_message": "for this run", "tools": []})
    config = factory.resolve(merged).config
    assert config.system_message == "for this run" and config.tools == ()
    assert factory.resolve(merged).model.id == "gpt-4o"  # untouched keys stay
    assert stored["configurable"]["type==agent/system_message"] == "stored"  # never changed
    assert with_overrides(stored, None) is stored


def test_client_functions(factory: AgentFactory) -> None:
    config = _resolve(factory, tools=["wikipedia", FUNCTION])
    [function] = config.functions
    assert (function.name, function.description) == ("lookup", "Look it up")
    assert function.parameters["properties"] == {"q": {"type": "string"}}
    assert [t.id for t in config.tools] == ["wikipedia"]
    bare = _resolve(factory, tools=[{"type": "function", "function": {"name": "ping"}}])
    assert bare.functions[0].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([{"type": "function"}], "needs"),
        ([{"type": "function", "function": {"name": "bad name"}}], "name"),
        ([{"type": "function", "function": {"name": "f", "parameters": []}}], "parameters"),
        ([FUNCTION, FUNCTION], "more than one tool"),
        ([{"type": "function", "function": {"name": "wikipedia"}}, "wikipedia"], "more than"),
    ],
)
def test_invalid_client_functions(factory: AgentFactory, tools: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _resolve(factory, tools=tools)


def test_functions_need_a_tool_using_type(factory: AgentFactory) -> None:
    with pytest.raises(ConfigError, match="does not use tools"):
        factory.resolve({"configurable": {"type": "chatbot", "tools": [FUNCTION]}})


def test_model_settings(factory: AgentFactory) -> None:
    config = _resolve(factory, temperature=0.3, top_p=1, response_format={"type": "json_object"})
    assert dict(config.model_settings) == {
        "temperature": 0.3,
        "top_p": 1.0,
        "response_format": {"type": "json_object"},
    }
    assert _resolve(factory, response_format="auto").model_settings == ()
    for bad in ({"temperature": 3}, {"top_p": "high"}, {"response_format": {"type": "xml"}}):
        with pytest.raises(ConfigError):
            _resolve(factory, **bad)


def test_namespaces() -> None:
    some = uuid.uuid4()
    assert is_namespace(namespace("collection", some))
    assert is_namespace(f"thread:{some}")
    for bad in (f"user:{some}", "collection:x", f"collection:{some.hex}", 3, None):
        assert not is_namespace(bad)
