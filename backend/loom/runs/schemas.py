"""JSON Schemas describing assistant configs and run input/output, built from the registries.

The UI renders the assistant form from :func:`config_schema` alone. Loom-specific hints use
``x-`` keys: ``x-enum-labels`` / ``x-enum-descriptions`` (display text per enum value),
``x-widget`` (``textarea``), ``x-tools`` (each tool with its description, availability and
per-assistant config schema), ``x-applies-to`` (the agent types a field is used by) and
``x-model-fields`` (per agent type, the config keys that may name the model, in the order they
are read). Both come from the agent types themselves (:mod:`loom.agents.types`).
"""

from __future__ import annotations

from typing import Any

from loom.agents.config import DEFAULT_SYSTEM_MESSAGE, OptionalField
from loom.agents.registry import AgentFactory


def config_schema(factory: AgentFactory) -> dict[str, Any]:
    settings = factory.settings
    types = factory.agent_types.all()
    models = factory.models.all()
    tools = factory.tools.all()

    def applies_to(name: OptionalField) -> list[str]:
        return [t.id for t in types if name in t.config_fields]

    return {
        "title": "Assistant config",
        "type": "object",
        "properties": {
            "configurable": {
                "type": "object",
                "properties": {
                    "type": {
                        "title": "Agent type",
                        "type": "string",
                        "enum": [t.id for t in types],
                        "default": "agent",
                        "x-enum-labels": {t.id: t.name for t in types},
                        "x-enum-descriptions": {t.id: t.description for t in types},
                    },
                    "model": {
                        "title": "Model",
                        "type": "string",
                        "enum": [m.id for m in models],
                        "default": settings.default_model,
                        "x-enum-labels": {m.id: m.name for m in models},
                        "x-enum-unavailable": {
                            m.id: reason
                            for m in models
                            if (reason := m.unavailable_reason(settings)) is not None
                        },
                        "x-model-fields": {t.id: list(t.model_fields) for t in types},
                    },
                    "system_message": {
                        "title": "Instructions",
                        "type": "string",
                        "default": DEFAULT_SYSTEM_MESSAGE,
                        "x-widget": "textarea",
                    },
                    "tools": {
                        "title": "Tools",
                        "type": "array",
                        "default": [],
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string", "enum": [t.id for t in tools]},
                                "config": {"type": "object"},
                            },
                            "required": ["type"],
                        },
                        "x-tools": [
                            {
                                "id": t.id,
                                "name": t.name,
                                "description": t.description,
                                "available": t.unavailable_reason(settings) is None,
                                "unavailable_reason": t.unavailable_reason(settings),
                                "config_schema": t.config_schema,
                            }
                            for t in tools
                        ],
                        "x-applies-to": applies_to("tools"),
                    },
                    "interrupt_before_action": {
                        "title": "Ask before using tools",
                        "type": "boolean",
                        "default": False,
                        "x-applies-to": applies_to("interrupt_before_action"),
                    },
                    "retrieval_description": {
                        "title": "What the uploaded documents are about",
                        "type": "string",
                        "x-applies-to": applies_to("retrieval_description"),
                    },
                    "recursion_limit": {
                        "title": "Step limit",
                        "type": "integer",
                        "minimum": 2,
                        "maximum": 200,
                        "default": settings.recursion_limit,
                        "x-applies-to": applies_to("recursion_limit"),
                    },
                },
            }
        },
    }


_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["human", "ai", "system", "tool"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array"}]},
        "id": {"type": "string"},
        "tool_calls": {"type": "array"},
        "tool_call_id": {"type": "string"},
    },
    "required": ["type", "content"],
}

INPUT_SCHEMA: dict[str, Any] = {
    "title": "Run input",
    "description": 'A list of messages, {"messages": [...]}, or null to continue a paused run',
    "anyOf": [
        {"type": "object", "properties": {"messages": {"type": "array", "items": _MESSAGE}}},
        {"type": "array", "items": _MESSAGE},
        {"type": "null"},
    ],
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "title": "Run output",
    "description": "The thread's messages (OpenGPTs returns a bare list for agent and chatbot)",
    "anyOf": [
        {"type": "array", "items": _MESSAGE},
        {"type": "object", "properties": {"messages": {"type": "array", "items": _MESSAGE}}},
    ],
}
