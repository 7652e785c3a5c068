"""Reading an assistant config: both spellings, and the model field each agent type reads."""

from __future__ import annotations

from typing import Any

import pytest

from loom.agents.config import ConfigError
from loom.agents.registry import AgentFactory, default_factory
from loom.settings import Settings


@pytest.fixture(scope="module")
def factory() -> AgentFactory:
    settings = Settings(database_url="postgresql://unused", openai_api_key="k")  # type: ignore[arg-type]
    return default_factory(settings, None)


def _model(factory: AgentFactory, conf: dict[str, Any]) -> str:
    return factory.resolve({"configurable": conf}).model.id


@pytest.mark.parametrize(
    ("conf", "model"),
    [
        # OpenGPTs' spelling: agent_type for the agent bot, llm_type for the others
        ({"type": "agent", "type==agent/agent_type": "GPT 4o"}, "gpt-4o"),
        ({"type": "chatbot", "type==chatbot/llm_type": "GPT 4o"}, "gpt-4o"),
        ({"type": "chat_retrieval", "type==chat_retrieval/llm_type": "GPT 4o"}, "gpt-4o"),
        # plain keys
        ({"type": "agent", "model": "gpt-4o"}, "gpt-4o"),
        ({"type": "chatbot", "model": "gpt-4o"}, "gpt-4o"),
        ({"type": "chatbot", "llm_type": "gpt-4o"}, "gpt-4o"),
        ({"agent_type": "gpt-4o"}, "gpt-4o"),  # the default type is agent
        # the type's own field comes first
        ({"type": "agent", "agent_type": "gpt-4o", "llm_type": "gpt-4.1"}, "gpt-4o"),
        ({"type": "chatbot", "agent_type": "gpt-4o", "llm_type": "gpt-4.1"}, "gpt-4.1"),
        ({"type": "agent", "llm_type": "gpt-4.1", "model": "gpt-4o"}, "gpt-4.1"),
        # a prefixed key wins over the plain one; another type's prefix is ignored
        ({"type": "agent", "agent_type": "gpt-4o", "type==agent/agent_type": "gpt-4.1"}, "gpt-4.1"),
        ({"type": "agent", "model": "gpt-4o", "type==chatbot/llm_type": "gpt-4.1"}, "gpt-4o"),
    ],
)
def test_model_fields(factory: AgentFactory, conf: dict[str, Any], model: str) -> None:
    assert _model(factory, conf) == model


def test_no_model_means_the_default(factory: AgentFactory) -> None:
    default = factory.settings.default_model
    assert _model(factory, {"type": "chatbot", "llm_type": None}) == default
    assert _model(factory, {"type": "chatbot", "type==agent/agent_type": "gpt-4o"}) == default


def test_a_model_field_must_be_a_string(factory: AgentFactory) -> None:
    with pytest.raises(ConfigError, match=r"configurable\.llm_type must be a string"):
        factory.resolve({"configurable": {"type": "chatbot", "llm_type": 4}})


def test_an_unknown_type_is_reported(factory: AgentFactory) -> None:
    with pytest.raises(ConfigError, match="unknown agent type 'robot'"):
        factory.resolve({"configurable": {"type": "robot", "llm_type": 4}})
