"""The models registry: stable ids -> chat model clients.

Every entry is reached through ``langchain-openai``: ``ChatOpenAI`` for OpenAI and any
OpenAI-compatible server (``OPENAI_BASE_URL``: Ollama, vLLM, LM Studio, ...) and
``AzureChatOpenAI`` for Azure. OpenGPTs' display names are accepted as aliases. The name sent
to the provider is the entry's ``provider_model`` unless ``LOOM_MODEL_NAMES`` overrides it.
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import orjson
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    SystemMessage,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import AzureChatOpenAI, ChatOpenAI
from langchain_openai.chat_models._compat import _convert_from_v1_to_chat_completions
from langchain_openai.chat_models.base import _convert_message_to_dict, _create_usage_metadata

from loom.errors import UpstreamError
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


class _MessageDicts:
    """Wire-format dicts of messages, remembered per message object. A thread's old messages
    are the same objects turn after turn (the saver remembers them), so a long thread's prompt
    is converted once, not on every turn. Bounded: emptied when full.

    Whole prompts are remembered too: a thread's next prompt is its last one (after the
    system message) with the turn's messages added, so :meth:`prompt` finds the last one by
    its first message, checks that the new prompt starts with the same objects, and converts
    only the rest.
    """

    def __init__(self, size: int = 50_000, prompts: int = 256) -> None:
        self._entries: dict[int, tuple[BaseMessage, dict[str, Any]]] = {}
        self._size = size
        self._prompts: OrderedDict[int, tuple[list[BaseMessage], list[dict[str, Any]]]] = (
            OrderedDict()
        )
        self._prompts_size = prompts

    @staticmethod
    def _convert(message: BaseMessage) -> dict[str, Any]:
        if isinstance(message, AIMessage):
            return _convert_message_to_dict(_convert_from_v1_to_chat_completions(message))
        return _convert_message_to_dict(message)

    def get(self, message: BaseMessage) -> dict[str, Any]:
        entry = self._entries.get(id(message))
        if entry is not None and entry[0] is message:
            return entry[1]  # only ever serialised (an o-series rename is the same each time)
        converted = self._convert(message)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[id(message)] = (message, converted)
        return converted

    def prompt(self, messages: list[BaseMessage]) -> list[dict[str, Any]]:
        """The dicts of a whole prompt, in order."""
        # The system message is built anew for every prompt: the thread starts after it (and
        # it is not remembered: it would never be seen again).
        start = 1 if len(messages) > 1 and isinstance(messages[0], SystemMessage) else 0
        head = [self._convert(m) for m in messages[:start]]
        if start >= len(messages):
            return head
        body = messages[start:]
        key = id(body[0])
        known = self._prompts.get(key)
        done: list[dict[str, Any]] = []
        if known is not None:
            old, dicts = known
            # The last one's newest message (the turn's input) may come back as its stored
            # copy: a prompt that matches all but that still saves the rest.
            for same in (len(old), len(old) - 1):
                if (
                    0 < same <= len(body)
                    and old[same - 1] is body[same - 1]
                    and all(map(operator.is_, old[:same], body))
                ):
                    done = dicts[:same]
                    break
        dicts = done + [self.get(m) for m in body[len(done) :]]
        self._prompts[key] = (body, dicts)
        self._prompts.move_to_end(key)
        while len(self._prompts) > self._prompts_size:
            self._prompts.popitem(last=False)
        return head + dicts


class _PassThroughMessages:
    """Build the prompt's messages once per message, and send them as they are.

    ``langchain-openai`` turns every message into a wire-format dict on every call (tens of
    milliseconds per turn on a thread of a thousand turns); :class:`_MessageDicts` does it
    once per message. The ``openai`` client would then walk them again against its
    TypedDicts (``_transform``, ~0.8 ms of CPU per message per call): passing them through
    ``extra_body`` skips that walk. The JSON sent is the same.
    """

    def _get_request_payload(
        self, input_: Any, *, stop: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        model: Any = self
        parent: Any = super()
        cache: _MessageDicts | None = model.__dict__.get("_loom_message_dicts")
        if cache is None:
            cache = _MessageDicts()
            object.__setattr__(model, "_loom_message_dicts", cache)
        # (By type: ``isinstance`` against ``BaseMessage`` is slow, once per message.)
        if isinstance(input_, list) and all(
            issubclass(kind, BaseMessage) for kind in set(map(type, input_))
        ):
            messages: list[BaseMessage] = input_  # what the conversion would give back
        else:
            messages = model._convert_input(input_).to_messages()
        payload: dict[str, Any] = parent._get_request_payload([], stop=stop, **kwargs)
        if "messages" not in payload:  # the Responses API: its own payload
            payload = parent._get_request_payload(input_, stop=stop, **kwargs)
            return payload
        dicts = cache.prompt(messages)
        if model.model_name and re.match(r"^o\d", model.model_name):
            for message in dicts:  # what langchain-openai does for o-series models
                if message["role"] == "system":
                    message["role"] = "developer"
        if dicts:
            extra = dict(payload.get("extra_body") or {})
            extra["messages"] = dicts
            payload["extra_body"] = extra
        payload["messages"] = []
        return payload


async def _sse_json(response: Any) -> AsyncIterator[dict[str, Any]]:
    async for chunk in _events(response.iter_bytes(), response.http_request):
        yield chunk


async def _events(body: AsyncIterator[bytes], request: Any) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a chat completions event stream, until ``[DONE]``.

    Raises ``openai.APIError`` for an ``error`` object in the stream (as the ``openai`` client
    does) and ``ValueError`` for a malformed event.
    """
    try:
        async for chunk in _sse_chunks(body, request):
            yield chunk
    # The ``openai`` client's HTTP library is ``httpx2``; its stream reader maps these the same.
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=request) from exc
    except httpx2.TransportError as exc:
        raise openai.APIConnectionError(request=request) from exc


async def _sse_chunks(body: AsyncIterator[bytes], request: Any) -> AsyncIterator[dict[str, Any]]:
    buffer = b""
    data: list[bytes] = []
    done = False
    async for raw in body:
        if done:
            # Read the body to its end (the chunked encoding's last chunk), so the HTTP
            # connection goes back to the pool instead of being closed.
            continue
        buffer += raw
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
                continue  # comments, event names, ids: not used by chat completions
            if not data:
                continue
            payload = b"\n".join(data)
            data = []
            if payload.startswith(b"[DONE]"):
                done = True
                break
            chunk = orjson.loads(payload)
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(
                    message=str(message or "An error occurred during streaming"),
                    request=request,
                    body=error,
                )
            yield chunk


OnText = Callable[[str], Awaitable[None]]


class _RawChunks:
    """Stream chat completions without building an ``openai`` object per token.

    The ``openai`` client turns every streamed chunk into a pydantic model through its
    generic, reflection-heavy ``construct_type`` (a fifth of a streamed run's CPU here), and
    ``langchain-openai`` turns it straight back into a dict. This reads the event stream
    itself (the request is still built and sent by the ``openai`` client, whose errors are
    unchanged) and hands each chunk's JSON to ``langchain-openai``'s own converter. A stalled
    stream is ended by the HTTP client's read timeout (``LOOM_MODEL_TIMEOUT_SECONDS``).
    Requests this does not cover (structured output, response headers) take the usual path.
    """

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        *,
        stream_usage: bool | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model: Any = self
        options = dict(kwargs)
        options["stream"] = True
        stream_usage = model._should_stream_usage(stream_usage, **options)
        if stream_usage:
            options["stream_options"] = {"include_usage": stream_usage}
        payload = model._get_request_payload(messages, stop=stop, **options)
        if (
            "response_format" in payload
            or model.include_response_headers
            or getattr(model, "_uses_gateway", False)
            or model._use_responses_api(payload)
        ):
            parent: Any = super()
            async for generation in parent._astream(
                messages, stop, run_manager, stream_usage=stream_usage, **kwargs
            ):
                yield generation
            return
        chunk_class: type[BaseMessageChunk] = AIMessageChunk
        async with model.async_client.with_streaming_response.create(**payload) as response:
            async for chunk in _sse_json(response):
                generation = model._convert_chunk_to_generation_chunk(chunk, chunk_class, {})
                if generation is None:
                    continue
                chunk_class = generation.message.__class__
                if run_manager:
                    logprobs = (generation.generation_info or {}).get("logprobs")
                    await run_manager.on_llm_new_token(
                        generation.text, chunk=generation, logprobs=logprobs
                    )
                yield generation

    async def _chunks(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The reply's chunks, through the ``openai`` client's streaming response."""
        model: Any = self
        async with model.async_client.with_streaming_response.create(**payload) as response:
            async for chunk in _sse_json(response):
                yield chunk

    async def stream_reply(
        self, messages: list[BaseMessage], on_text: OnText, **kwargs: Any
    ) -> AIMessage | None:
        """Stream one reply, handing its text to ``on_text`` as it arrives; the whole reply.

        The path a run's model calls take: no chunk object, no callback per token, one
        message built at the end from what was accumulated (tool calls parsed as
        ``langchain-openai`` does). ``on_text`` gets ``""`` for the reply's first chunk
        when it carries no text (a reply that starts with tool calls). ``None``: this
        request needs the usual path (structured output, response headers).
        """
        model: Any = self
        options = dict(kwargs)
        options["stream"] = True
        if model._should_stream_usage(None, **options):
            options["stream_options"] = {"include_usage": True}
        payload = model._get_request_payload(messages, **options)
        if (
            "response_format" in payload
            or model.include_response_headers
            or getattr(model, "_uses_gateway", False)
            or model._use_responses_api(payload)
        ):
            return None
        texts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        metadata: dict[str, Any] = {}
        usage: Any = None
        started = False
        async with contextlib.aclosing(model._chunks(payload)) as chunks:
            async for chunk in chunks:
                if chunk.get("usage"):
                    usage = _create_usage_metadata(chunk["usage"], chunk.get("service_tier"))
                for key in ("model", "system_fingerprint", "service_tier"):
                    if chunk.get(key):
                        metadata["model_name" if key == "model" else key] = chunk[key]
                choices = chunk.get("choices") or ()
                if not choices:
                    continue
                choice = choices[0]
                if choice.get("finish_reason"):
                    metadata["finish_reason"] = choice["finish_reason"]
                delta = choice.get("delta") or {}
                text = delta.get("content")
                for call in delta.get("tool_calls") or ():
                    slot = calls.setdefault(call.get("index", 0), {"args": []})
                    if call.get("id"):
                        slot["id"] = call["id"]
                    function = call.get("function") or {}
                    if function.get("name"):
                        slot["name"] = function["name"]
                    if function.get("arguments"):
                        slot["args"].append(function["arguments"])
                if text:
                    texts.append(text)
                    started = True
                    await on_text(text)
                elif not started:
                    started = True
                    await on_text("")
        if not started:
            raise UpstreamError("The model provider sent an empty reply")
        whole = AIMessageChunk(
            content="".join(texts),
            tool_call_chunks=[
                {
                    "name": c.get("name"),
                    "args": "".join(c["args"]),
                    "id": c.get("id"),
                    "index": index,
                    "type": "tool_call_chunk",
                }
                for index, c in sorted(calls.items())
            ],
            response_metadata={**metadata, "model_provider": "openai"},
            usage_metadata=usage,
        )
        return AIMessage(
            content=whole.content,
            additional_kwargs=whole.additional_kwargs,
            response_metadata=whole.response_metadata,
            tool_calls=whole.tool_calls,
            invalid_tool_calls=whole.invalid_tool_calls,
            usage_metadata=whole.usage_metadata,
        )


class LoomChatOpenAI(_RawChunks, _PassThroughMessages, ChatOpenAI):
    async def _chunks(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send the request on the ``openai`` client's own HTTP client (its connections,
        timeouts, headers and error classes), building it directly: the body encoded once
        with ``orjson``, none of the client's per-request preparation (a tenth of a run's
        CPU, and a long thread's prompt encoded by the standard library every turn)."""
        client: Any = self.root_async_client
        body = {
            k: v
            for k, v in payload.items()
            if k not in ("extra_body", "extra_headers", "extra_query", "timeout")
        }
        body.update(payload.get("extra_body") or {})
        headers = {
            k: v
            for k, v in {**client.default_headers, **client.auth_headers}.items()
            if isinstance(v, str)
        }
        headers["Content-Type"] = "application/json"
        headers.update(payload.get("extra_headers") or {})
        http = client._client
        url = self.__dict__.get("_loom_completions_url")
        if url is None:  # the same for every request: parsed once per model
            url = client._prepare_url("chat/completions")
            object.__setattr__(self, "_loom_completions_url", url)
        request = http.build_request(
            "POST",
            url,
            content=orjson.dumps(body),
            headers=headers,
            timeout=client.timeout,
        )
        try:
            response = await http.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except httpx2.TransportError as exc:
            raise openai.APIConnectionError(request=request) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise client._make_status_error_from_response(response)
            async for chunk in _events(response.aiter_bytes(), request):
                yield chunk
        finally:
            await response.aclose()


class LoomAzureChatOpenAI(_RawChunks, _PassThroughMessages, AzureChatOpenAI):
    pass


def _sampling(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments for a config's model settings (temperature, top_p,
    response_format: the last one is passed through to the API as it is)."""
    out: dict[str, Any] = {k: params[k] for k in ("temperature", "top_p") if k in params}
    if "response_format" in params:
        out["model_kwargs"] = {"response_format": params["response_format"]}
    return out


def _openai(
    spec: ModelSpec,
    settings: Settings,
    model_name: str,
    params: Mapping[str, Any],
    http: httpx2.AsyncClient | None,
) -> BaseChatModel:
    key = settings.openai_api_key
    return LoomChatOpenAI(
        model=model_name,
        http_async_client=http,
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
    spec: ModelSpec,
    settings: Settings,
    model_name: str,
    params: Mapping[str, Any],
    http: httpx2.AsyncClient | None,
) -> BaseChatModel:
    return LoomAzureChatOpenAI(
        http_async_client=http,
        azure_deployment=settings.azure_openai_deployment or model_name,
        azure_endpoint=settings.azure_openai_endpoint,
        api_key=settings.azure_openai_api_key,
        api_version=settings.azure_openai_api_version,
        streaming=True,
        timeout=settings.model_timeout_seconds,
        max_retries=0,
        **_sampling(params),
    )


_Provider = Callable[
    [ModelSpec, Settings, str, Mapping[str, Any], httpx2.AsyncClient | None], BaseChatModel
]
_PROVIDERS: dict[str, _Provider] = {
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
        self,
        spec: ModelSpec,
        settings: Settings,
        params: Mapping[str, Any] | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> BaseChatModel:
        """The chat model for ``spec``; ``params`` are a config's model settings. Its requests
        go through ``http`` (the process's provider client, which its owner closes); without
        one, through ``langchain-openai``'s shared default client (never closed)."""
        model_name = settings.model_names.get(spec.id, spec.provider_model)
        return _PROVIDERS[spec.provider](spec, settings, model_name, params or {}, http)


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
