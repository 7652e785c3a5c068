"""The models registry: stable ids -> chat model clients.

Every entry is reached through ``langchain-openai``: ``ChatOpenAI`` for OpenAI and any
OpenAI-compatible server (``OPENAI_BASE_URL``: Ollama, vLLM, LM Studio, ...) and
``AzureChatOpenAI`` for Azure. OpenGPTs' display names are accepted as aliases. The name sent
to the provider is the entry's ``provider_model`` unless ``LOOM_MODEL_NAMES`` overrides it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from loom.settings import Settings


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    provider: str
    provider_model: str
    aliases: tuple[str, ...] = ()

    def unavailable_reason(self, settings: Settings) -> str | None:
        if self.provider == "azure":
            if not (settings.azure_openai_api_key and settings.azure_openai_endpoint):
                return "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are not set"
            return None
        if settings.openai_api_key is None and settings.openai_base_url is None:
            return "OPENAI_API_KEY (or OPENAI_BASE_URL) is not set"
        return None


class _PassThroughMessages:
    """Send the already-serialised messages as they are.

    ``langchain-openai`` turns messages into wire-format dicts; the ``openai`` client then
    walks them again against its TypedDicts (``_transform``), which costs ~0.8 ms of CPU per
    message per call: 470 ms per turn on a 600-message thread. Passing them through
    ``extra_body`` skips that walk; the JSON sent is the same.
    """

    def _get_request_payload(
        self, input_: Any, *, stop: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(  # type: ignore[misc]
            input_, stop=stop, **kwargs
        )
        messages = payload.get("messages")
        if isinstance(messages, list) and messages:
            extra = dict(payload.get("extra_body") or {})
            extra["messages"] = messages
            payload["extra_body"] = extra
            payload["messages"] = []
        return payload


class LoomChatOpenAI(_PassThroughMessages, ChatOpenAI):
    pass


class LoomAzureChatOpenAI(_PassThroughMessages, AzureChatOpenAI):
    pass


def _sampling(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments for a config's model settings (temperature, top_p,
    response_format: the last one is passed through to the API as it is)."""
    out: dict[str, Any] = {k: params[k] for k in ("temperature", "top_p") if k in params}
    if "response_format" in params:
        out["model_kwargs"] = {"response_format": params["response_format"]}
    return out


def _openai(
    spec: ModelSpec, settings: Settings, model_name: str, params: Mapping[str, Any]
) -> BaseChatModel:
    key = settings.openai_api_key
    return LoomChatOpenAI(
        model=model_name,
        # An OpenAI-compatible local server usually needs no key, but the client insists on one.
        api_key=key if key is not None else "not-needed",
        base_url=settings.openai_base_url,
        streaming=True,
        stream_usage=True,
        timeout=settings.model_timeout_seconds,
        max_retries=0,  # Loom retries transient failures itself, before the first token only
        **_sampling(params),
    )


def _azure(
    spec: ModelSpec, settings: Settings, model_name: str, params: Mapping[str, Any]
) -> BaseChatModel:
    return LoomAzureChatOpenAI(
        azure_deployment=settings.azure_openai_deployment or model_name,
        azure_endpoint=settings.azure_openai_endpoint,
        api_key=settings.azure_openai_api_key,
        api_version=settings.azure_openai_api_version,
        streaming=True,
        timeout=settings.model_timeout_seconds,
        max_retries=0,
        **_sampling(params),
    )


_PROVIDERS: dict[str, Callable[[ModelSpec, Settings, str, Mapping[str, Any]], BaseChatModel]] = {
    "openai": _openai,
    "azure": _azure,
}


class ModelRegistry:
    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._by_id: dict[str, ModelSpec] = {}
        self._by_name: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.provider not in _PROVIDERS:
                raise ValueError(f"model {spec.id}: unknown provider {spec.provider}")
            self._by_id[spec.id] = spec
            for name in (spec.id, spec.name, *spec.aliases):
                self._by_name[name.casefold()] = spec

    def resolve(self, name: str) -> ModelSpec | None:
        return self._by_name.get(name.casefold())

    def all(self) -> list[ModelSpec]:
        return list(self._by_id.values())

    def build(
        self, spec: ModelSpec, settings: Settings, params: Mapping[str, Any] | None = None
    ) -> BaseChatModel:
        """The chat model for ``spec``; ``params`` are a config's model settings."""
        model_name = settings.model_names.get(spec.id, spec.provider_model)
        return _PROVIDERS[spec.provider](spec, settings, model_name, params or {})


def default_model_registry() -> ModelRegistry:
    return ModelRegistry(
        [
            ModelSpec("gpt-4o-mini", "GPT 4o Mini", "openai", "gpt-4o-mini"),
            ModelSpec("gpt-4o", "GPT 4o", "openai", "gpt-4o"),
            ModelSpec("gpt-4.1", "GPT 4.1", "openai", "gpt-4.1"),
            ModelSpec("gpt-4.1-mini", "GPT 4.1 Mini", "openai", "gpt-4.1-mini"),
            ModelSpec("gpt-4-turbo", "GPT 4 Turbo", "openai", "gpt-4-turbo", ("GPT 4",)),
            ModelSpec("gpt-3.5-turbo", "GPT 3.5 Turbo", "openai", "gpt-3.5-turbo"),
            # Any OpenAI-compatible server at OPENAI_BASE_URL; set the model it serves with
            # LOOM_MODEL_NAMES='{"local": "llama3.1"}'.
            ModelSpec("local", "Local (OpenAI-compatible)", "openai", "llama3.1", ("Ollama",)),
            ModelSpec("azure-openai", "Azure OpenAI", "azure", "gpt-4o", ("Azure OpenAI",)),
        ]
    )
