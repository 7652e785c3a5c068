"""Reading an assistant's ``config.configurable`` in both spellings.

OpenGPTs prefixes every field with the bot type it belongs to
(``"type==agent/system_message"``); Loom's own clients write plain keys (``system_message``).
:func:`read_assistant_config` is the one function that understands both: for a field ``f`` of
bot type ``T`` it takes ``"type==T/f"`` first, then ``f``. The field naming the model differs
per bot type in OpenGPTs (``agent_type`` for the agent, ``llm_type`` for the others): each
agent type lists the names it reads (:attr:`loom.agents.types.base.AgentType.model_fields`).
The stored config is never rewritten: it stays exactly as the client sent it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DEFAULT_TYPE = "agent"
DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."
# Loom's own name for the model field; the only one read for a type the caller does not know.
DEFAULT_MODEL_FIELDS: tuple[str, ...] = ("model",)

OptionalField = Literal[
    "tools", "interrupt_before_action", "retrieval_description", "recursion_limit"
]
"""The config fields only some agent types use (each type lists the ones it does)."""


class ConfigError(ValueError):
    """The config is not valid; the message says what to fix."""


@dataclass(frozen=True)
class ToolRef:
    id: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientFunction:
    """A function the client executes: the model may call it, the run then stops for its
    output (status ``interrupted``, next ``client_tools``) instead of running anything.

    Declared in ``tools`` as ``{"type": "function", "function": {"name", "description",
    "parameters"}}`` (the chat-completions function shape)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class AssistantConfig:
    """The meaning of a stored config, after both spellings are folded together."""

    type: str
    model: str | None
    system_message: str
    tools: tuple[ToolRef, ...]
    interrupt_before_action: bool
    retrieval_description: str | None
    recursion_limit: int | None
    functions: tuple[ClientFunction, ...] = ()
    # Sampling settings sent to the model when set (every agent type, every provider that
    # takes them): temperature 0..2, top_p 0..1, response_format as chat completions takes it
    # ({"type": "text" | "json_object"} or {"type": "json_schema", "json_schema": {...}}).
    model_settings: tuple[tuple[str, Any], ...] = ()


class ToolResolver(Protocol):
    def normalize(self, entry: object) -> tuple[str, dict[str, Any]]:
        """(stable tool id, tool config) for a config entry; ``ValueError`` if unknown."""
        ...


def _get(conf: Mapping[str, Any], bot_type: str, name: str) -> Any:
    prefixed = f"type=={bot_type}/{name}"
    if prefixed in conf:
        return conf[prefixed]
    return conf.get(name)


def configurable_of(config: Mapping[str, Any]) -> Mapping[str, Any]:
    conf = config.get("configurable", {})
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ConfigError("config.configurable must be an object")
    return conf


def read_assistant_config(
    config: Mapping[str, Any],
    tools: ToolResolver,
    model_fields: Callable[[str], Sequence[str]],
) -> AssistantConfig:
    """Fold a stored assistant config into an :class:`AssistantConfig`.

    ``model_fields(type_id)`` names the fields that may hold the model for that agent type, in
    the order they are read. Raises :class:`ConfigError` for values of the wrong type and for
    unknown tools; whether the agent type and model exist is checked by the caller against its
    registries.
    """
    conf = configurable_of(config)
    bot_type = conf.get("type", DEFAULT_TYPE)
    if bot_type is None:
        bot_type = DEFAULT_TYPE
    if not isinstance(bot_type, str):
        raise ConfigError("configurable.type must be a string")

    model: str | None = None
    for name in model_fields(bot_type):
        value = _get(conf, bot_type, name)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"configurable.{name} must be a string")
            model = value
            break

    system_message = _get(conf, bot_type, "system_message")
    if system_message is None:
        system_message = DEFAULT_SYSTEM_MESSAGE
    if not isinstance(system_message, str):
        raise ConfigError("configurable.system_message must be a string")

    raw_tools = _get(conf, bot_type, "tools") or []
    if not isinstance(raw_tools, Sequence) or isinstance(raw_tools, str | bytes):
        raise ConfigError("configurable.tools must be a list")
    refs: list[ToolRef] = []
    functions: list[ClientFunction] = []
    for entry in raw_tools:
        if isinstance(entry, Mapping) and entry.get("type") == CLIENT_FUNCTION_TYPE:
            functions.append(read_client_function(entry))
            continue
        try:
            tool_id, tool_config = tools.normalize(entry)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        refs.append(ToolRef(tool_id, tool_config))
    names = [r.id for r in refs] + [f.name for f in functions]
    repeated = sorted({f.name for f in functions if names.count(f.name) > 1})
    if repeated:
        raise ConfigError(f"configurable.tools: more than one tool is named {repeated[0]!r}")

    interrupt = _get(conf, bot_type, "interrupt_before_action")
    if interrupt is None:
        interrupt = False
    if not isinstance(interrupt, bool):
        raise ConfigError("configurable.interrupt_before_action must be true or false")

    description = _get(conf, bot_type, "retrieval_description")
    if description is not None and not isinstance(description, str):
        raise ConfigError("configurable.retrieval_description must be a string")

    limit = _get(conf, bot_type, "recursion_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 2):
        raise ConfigError("configurable.recursion_limit must be an integer of at least 2")

    model_settings: list[tuple[str, Any]] = []
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = _get(conf, bot_type, name)
        if value is None:
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise ConfigError(f"configurable.{name} must be a number from {low:g} to {high:g}")
        model_settings.append((name, float(value)))
    response_format = _get(conf, bot_type, "response_format")
    if response_format is not None and response_format != "auto":
        if not isinstance(response_format, Mapping) or response_format.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            raise ConfigError(
                'configurable.response_format must be {"type": "text" | "json_object" | '
                '"json_schema", ...}'
            )
        model_settings.append(("response_format", dict(response_format)))

    return AssistantConfig(
        type=bot_type,
        model=model,
        system_message=system_message,
        tools=tuple(refs),
        interrupt_before_action=interrupt,
        retrieval_description=description,
        recursion_limit=limit,
        functions=tuple(functions),
        model_settings=tuple(model_settings),
    )


CLIENT_FUNCTION_TYPE = "function"
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_FUNCTION_DESCRIPTION = 1024


def read_client_function(entry: Mapping[str, Any]) -> ClientFunction:
    """``{"type": "function", "function": {"name", "description"?, "parameters"?}}``."""
    spec = entry.get("function")
    if not isinstance(spec, Mapping):
        raise ConfigError('a function tool needs "function": {"name": ..., "parameters": ...}')
    name = spec.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise ConfigError(
            "a function's name must be 1 to 64 letters, digits, underscores or dashes"
        )
    description = spec.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_FUNCTION_DESCRIPTION:
        raise ConfigError(
            f"function {name}: description must be a string of at most "
            f"{MAX_FUNCTION_DESCRIPTION} characters"
        )
    parameters = spec.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
        raise ConfigError(f"function {name}: parameters must be a JSON Schema of an object")
    return ClientFunction(name=name, description=description, parameters=dict(parameters))


def with_overrides(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """``config`` with plain configurable keys replaced for one run.

    An override ``k`` also hides OpenGPTs' prefixed spelling (``"type==agent/k"``), which
    would otherwise be read first. The stored config is never changed.
    """
    if not overrides:
        return config
    conf = {
        key: value
        for key, value in configurable_of(config).items()
        if not (key.startswith("type==") and key.rsplit("/", 1)[-1] in overrides)
    }
    conf.update(overrides)
    return {**config, "configurable": conf}
