"""What every tool module builds on: the run context, the tool spec and the error contract.

A tool is described by a :class:`ToolSpec` (stable id, display name, aliases, the settings it
needs, a pydantic model of the per-assistant config a user may set) and turned into a
LangChain :class:`~langchain_core.tools.BaseTool` per run by :meth:`ToolSpec.build`.

Error contract: a tool never raises out of the graph. :func:`make_tool` wraps the tool's
coroutine so network failures, timeouts, bad API answers and refusals become a
:class:`~langchain_core.tools.ToolException`, which LangChain turns into a ``ToolMessage``
with ``status="error"`` whose text the model reads (``"Error: ..."``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar
from xml.etree.ElementTree import ParseError

import httpx
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import AliasChoices, BaseModel, ConfigDict, SecretStr, ValidationError

from loom.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "RetrievedChunk",
    "Retriever",
    "ToolConfig",
    "ToolConfigError",
    "ToolContext",
    "ToolSpec",
    "ToolUnavailableError",
    "clip",
    "make_tool",
]


@dataclass(frozen=True)
class RetrievedChunk:
    """One passage returned by the retrieval layer."""

    content: str
    source: str | None = None
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class Retriever(Protocol):
    """Searches the documents a run may see (the assistant's and the thread's namespaces)."""

    async def __call__(self, query: str) -> list[RetrievedChunk]: ...


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use while it is built for one run."""

    settings: Settings
    retriever: Retriever | None = None


class ToolConfig(BaseModel):
    """Base of every tool's per-assistant config model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolConfigError(ValueError):
    """A tool entry or its config is invalid (the API maps this to HTTP 422)."""


class ToolUnavailableError(RuntimeError):
    """The tool cannot be built with the current settings (e.g. an API key is missing)."""


ConfigT = TypeVar("ConfigT", bound=ToolConfig)
ToolBuilder = Callable[[ToolContext, ConfigT], BaseTool]


@dataclass(frozen=True)
class ToolSpec(Generic[ConfigT]):
    """A tool kind: its identity, what it needs and how to build it for a run.

    ``id`` is stable (stored in assistant configs, used as the function name the model sees, so
    it must match ``^[a-zA-Z0-9_-]+$``); ``name`` is the display name; ``aliases`` are other
    spellings clients send (OpenGPTs ids, display names, legacy names), matched
    case-insensitively by the registry.
    """

    id: str
    name: str
    description: str
    config_model: type[ConfigT]
    builder: ToolBuilder[ConfigT]
    aliases: tuple[str, ...] = ()
    required_settings: tuple[str, ...] = ()

    @property
    def config_schema(self) -> dict[str, Any]:
        """JSON Schema of the per-assistant config a user may set."""
        return self.config_model.model_json_schema()

    def validate_config(self, config: Mapping[str, Any] | None) -> ConfigT:
        """Validate a per-assistant config; raises :class:`ToolConfigError` with a clear message."""
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ToolConfigError(
                f"tool {self.id!r}: config must be an object, not {type(config).__name__}"
            )
        try:
            return self.config_model.model_validate(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ToolConfigError(f"tool {self.id!r}: invalid config: {problems}") from None

    def unavailable_reason(self, settings: Settings) -> str | None:
        """Why the tool cannot run with these settings, or ``None`` when it can."""
        missing = [name for name in self.required_settings if not _is_set(settings, name)]
        if not missing:
            return None
        names = " and ".join(_env_name(name) for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        return f"{names} {verb} not set"

    def build(self, ctx: ToolContext, config: Mapping[str, Any] | None = None) -> BaseTool:
        """Build the LangChain tool for one run.

        Raises :class:`ToolConfigError` for an invalid config and :class:`ToolUnavailableError`
        when :meth:`unavailable_reason` says the tool cannot run.
        """
        validated = self.validate_config(config)
        reason = self.unavailable_reason(ctx.settings)
        if reason is not None:
            raise ToolUnavailableError(f"tool {self.id!r} is unavailable: {reason}")
        return self.builder(ctx, validated)


def _is_set(settings: Settings, name: str) -> bool:
    value = getattr(settings, name, None)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != ""


def _env_name(setting: str) -> str:
    """The environment variable a setting is read from (its first alias, else ``LOOM_<NAME>``)."""
    info = Settings.model_fields.get(setting)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return f"LOOM_{setting.upper()}"


def clip(text: str, limit: int) -> str:
    """Cap ``text`` at ``limit`` characters, saying so when something was cut."""
    if len(text) <= limit:
        return text
    marker = "\n[... truncated]"
    return text[: max(0, limit - len(marker))].rstrip() + marker


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _error_text(exc: ToolException) -> str:
    return f"Error: {_describe(exc)}"


def make_tool(
    *,
    name: str,
    description: str,
    args_schema: type[BaseModel],
    coroutine: Callable[..., Awaitable[Any]],
    timeout_seconds: float,
    response_format: Literal["content", "content_and_artifact"] = "content",
) -> BaseTool:
    """Wrap an async tool function as a LangChain tool that reports failures as text.

    The model sees ``"Error: ..."`` (and the ``ToolMessage`` has ``status="error"``) instead of
    the exception reaching the graph. Invalid arguments from the model are reported the same
    way. Cancellation is not caught. With ``response_format="content_and_artifact"`` the
    coroutine returns ``(text for the model, artifact kept on the tool message)``.
    """

    async def run(**kwargs: Any) -> Any:
        try:
            return await coroutine(**kwargs)
        except ToolException:
            raise
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ToolException(f"{name} timed out after {timeout_seconds:g} seconds") from exc
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise ToolException(f"{name}: the service answered HTTP {status}") from exc
        except httpx.HTTPError as exc:
            raise ToolException(f"{name}: request failed: {_describe(exc)}") from exc
        except (ParseError, ValueError, KeyError, TypeError) as exc:
            raise ToolException(
                f"{name}: could not read the service's answer ({_describe(exc)})"
            ) from exc
        except Exception as exc:
            logger.exception("tool %s failed unexpectedly", name)
            raise ToolException(f"{name} failed unexpectedly ({type(exc).__name__})") from exc

    return StructuredTool.from_function(
        coroutine=run,
        name=name,
        description=description,
        args_schema=args_schema,
        handle_tool_error=_error_text,
        handle_validation_error=lambda exc: f"Error: invalid arguments for {name}: {exc}",
        response_format=response_format,
    )
