"""Tests of the fake OpenAI server, driven by the real openai / langchain_openai clients."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from .openai_server import FakeOpenAI, ToolCall, embed_text, tokenize

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    return server


@dataclass(frozen=True)
class Http:
    """The HTTP clients of the models built here, closed when the module ends (one the models
    made themselves would be left to the garbage collector with its connections open)."""

    sync: httpx2.Client
    aio: httpx2.AsyncClient


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[Http]:
    with openai.DefaultHttpxClient() as sync:
        async with openai.DefaultAsyncHttpxClient() as aio:
            yield Http(sync, aio)


def chat(fake: FakeOpenAI, http: Http, **kwargs: object) -> ChatOpenAI:
    params: dict[str, object] = {
        "base_url": fake.base_url,
        "http_client": http.sync,
        "http_async_client": http.aio,
        "api_key": "test",
        "model": "gpt-4o-mini",
        "streaming": True,
        "max_retries": 0,
    }
    params.update(kwargs)
    return ChatOpenAI(**params)


def embeddings(fake: FakeOpenAI, http: Http, **kwargs: object) -> OpenAIEmbeddings:
    params: dict[str, object] = {
        "base_url": fake.base_url,
        "http_client": http.sync,
        "http_async_client": http.aio,
        "api_key": "test",
        "model": "text-embedding-3-small",
        "check_embedding_ctx_length": False,
    }
    params.update(kwargs)
    return OpenAIEmbeddings(**params)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


# -- tokenisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "one", "  lead and trail  ", "a\n\nb\tc", "Hello, world! 你好 🌍 ", "x  y"]
)
def test_tokenize_round_trips(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert all(t for t in tokens)


def test_tokenize_attaches_whitespace() -> None:
    assert tokenize("Hello  big world") == ["Hello", "  big", " world"]


# -- chat: text ---------------------------------------------------------------------------------


async def test_stream_chunks_concatenate_to_scripted_text(fake: FakeOpenAI, http: Http) -> None:
    text = "Hello, world!\n\n  Indented line with  double spaces.\tTab, ünïcode 🌍 and a trailing "
    fake.reply(text=text)
    chunks = [c async for c in chat(fake, http).astream("hi")]
    contents = [c.content for c in chunks if c.content]
    assert "".join(contents) == text
    assert contents == tokenize(text)  # one token per chunk


async def test_explicit_tokens(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(tokens=["He", "llo", " th", "ere"])
    chunks = [c.content async for c in chat(fake, http).astream("hi") if c.content]
    assert chunks == ["He", "llo", " th", "ere"]


def test_text_and_tokens_must_agree(fake: FakeOpenAI) -> None:
    with pytest.raises(ValueError):
        fake.reply(text="abc", tokens=["a", "b"])


async def test_default_reply_and_set_default(fake: FakeOpenAI, http: Http) -> None:
    llm = chat(fake, http)
    assert (await llm.ainvoke("hi")).content == "Hello from the fake model."
    fake.set_default(text="Changed default.")
    assert (await llm.ainvoke("hi")).content == "Changed default."
    fake.reset()
    assert (await llm.ainvoke("hi")).content == "Hello from the fake model."


async def test_fifo_order_then_default(fake: FakeOpenAI, http: Http) -> None:
    first, second = fake.reply(text="first"), fake.reply(text="second")
    llm = chat(fake, http)
    assert [(await llm.ainvoke(q)).content for q in ("a", "b", "c")] == [
        "first",
        "second",
        "Hello from the fake model.",
    ]
    assert first.requests[0]["messages"][-1]["content"] == "a"
    assert second.requests[0]["messages"][-1]["content"] == "b"
    assert fake.pending == 0


async def test_non_streaming(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(text="Plain answer.")
    msg = await chat(fake, http, streaming=False).ainvoke("hi")
    assert msg.content == "Plain answer."
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] == 2
    assert fake.chat_requests[-1].get("stream") in (None, False)


async def test_stream_usage_chunk(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(text="one two three")
    final: AIMessageChunk | None = None
    async for chunk in chat(fake, http, stream_usage=True).astream("hi"):
        final = chunk if final is None else final + chunk
    assert final is not None and final.content == "one two three"
    assert final.usage_metadata is not None
    assert final.usage_metadata["output_tokens"] == 3
    assert fake.chat_requests[-1]["stream_options"] == {"include_usage": True}


def test_sync_client_and_requests_recorded(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(text="sync ok")
    assert chat(fake, http).invoke([HumanMessage("question?")]).content == "sync ok"
    body = fake.chat_requests[-1]
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "question?"}]
    assert fake.requests == fake.chat_requests


async def test_token_delay(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(text="a b c d e", token_delay=0.02)
    start = time.perf_counter()
    stamps = []
    async for chunk in chat(fake, http).astream("hi"):
        if chunk.content:
            stamps.append(time.perf_counter() - start)
    assert len(stamps) == 5
    assert stamps[-1] >= 0.09
    assert stamps[-1] - stamps[0] >= 0.07  # tokens really are spread out


async def test_concurrent_streams(fake: FakeOpenAI, http: Http) -> None:
    fake.set_default(text=" ".join(f"tok{i}" for i in range(20)), token_delay=0.005)
    llm = chat(fake, http)

    async def one() -> str:
        return "".join([str(c.content) async for c in llm.astream("hi")])

    results = await asyncio.gather(*(one() for _ in range(32)))
    assert all(r == " ".join(f"tok{i}" for i in range(20)) for r in results)


# -- chat: tool calls ---------------------------------------------------------------------------


async def test_streamed_tool_calls_are_parsed(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(
        text="Let me look that up.",
        tool_calls=[
            ToolCall(name="wikipedia", args={"query": "Alan Turing", "lang": "en"}),
            ToolCall(name="calculator", args={"expression": "2 + 2 * 10"}, id="call_fixed"),
        ],
    )
    final: AIMessageChunk | None = None
    async for chunk in chat(fake, http).astream("who was turing?"):
        final = chunk if final is None else final + chunk
    assert final is not None
    assert final.content == "Let me look that up."
    assert [(tc["name"], tc["args"]) for tc in final.tool_calls] == [
        ("wikipedia", {"query": "Alan Turing", "lang": "en"}),
        ("calculator", {"expression": "2 + 2 * 10"}),
    ]
    assert final.tool_calls[0]["id"].startswith("call_")
    assert final.tool_calls[1]["id"] == "call_fixed"
    assert final.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("streaming", [True, False])
async def test_tool_call_only_reply_via_ainvoke(
    fake: FakeOpenAI, http: Http, streaming: bool
) -> None:
    fake.reply(tool_calls=[ToolCall(name="search", args={"q": "x"})])
    msg = await chat(fake, http, streaming=streaming).ainvoke("hi")
    assert isinstance(msg, AIMessage)
    assert msg.content == ""
    assert [(tc["name"], tc["args"]) for tc in msg.tool_calls] == [("search", {"q": "x"})]


def test_invalid_tool_args_are_sent_verbatim(fake: FakeOpenAI, http: Http) -> None:
    broken = '{"q": "a long, broken argument string'
    fake.reply(tool_calls=[ToolCall(name="search", args=broken)])
    fake.reply(tool_calls=[ToolCall(name="search", args=broken)])
    client = openai.OpenAI(
        base_url=fake.base_url, api_key="test", max_retries=0, http_client=http.sync
    )
    messages = [{"role": "user", "content": "hi"}]
    stream = client.chat.completions.create(model="m", messages=messages, stream=True)
    fragments = [
        tc.function.arguments
        for chunk in stream
        for tc in (chunk.choices[0].delta.tool_calls or [])
        if tc.function and tc.function.arguments
    ]
    assert len(fragments) > 1 and "".join(fragments) == broken
    msg = client.chat.completions.create(model="m", messages=messages).choices[0].message
    assert msg.content is None
    assert msg.tool_calls is not None and msg.tool_calls[0].function.arguments == broken  # type: ignore[union-attr]


# -- chat: errors and faults --------------------------------------------------------------------


async def test_http_500_raises(fake: FakeOpenAI, http: Http) -> None:
    fake.fail(status=500, message="boom")
    with pytest.raises(openai.InternalServerError, match="boom"):
        await chat(fake, http).ainvoke("hi")
    # the queue moved on
    assert (await chat(fake, http).ainvoke("hi")).content == "Hello from the fake model."


async def test_http_429_then_retry_succeeds(fake: FakeOpenAI, http: Http) -> None:
    fake.fail(status=429, retry_after=0)
    fake.reply(text="after retry")
    msg = await chat(fake, http, max_retries=1).ainvoke("hi")
    assert msg.content == "after retry"
    assert len(fake.chat_requests) == 2


async def test_http_429_without_retries_raises(fake: FakeOpenAI, http: Http) -> None:
    fake.fail(status=429)
    with pytest.raises(openai.RateLimitError) as info:
        await chat(fake, http).ainvoke("hi")
    assert info.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


async def test_cut_stream_raises_after_partial_output(fake: FakeOpenAI, http: Http) -> None:
    fake.fault("cut", after_tokens=3, text="one two three four five")
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in chat(fake, http).astream("hi"):
            received.append(str(chunk.content))
    assert "".join(received) == "one two three"


async def test_cut_non_streaming_raises(fake: FakeOpenAI, http: Http) -> None:
    fake.fault("cut")
    with pytest.raises(openai.APIConnectionError):
        await chat(fake, http, streaming=False).ainvoke("hi")


async def test_bad_json_raises(fake: FakeOpenAI, http: Http) -> None:
    fake.fault("bad_json", after_tokens=2)
    with pytest.raises(json.JSONDecodeError):
        await chat(fake, http).ainvoke("hi")


async def test_stall_times_out(fake: FakeOpenAI, http: Http) -> None:
    fake.fault("stall", after_tokens=1)
    received: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in chat(fake, http, timeout=0.3).astream("hi"):
            received.append(str(chunk.content))
    assert received == ["Hello"]
    # the server is fine afterwards
    assert (await chat(fake, http).ainvoke("hi")).content == "Hello from the fake model."


def test_unknown_fault_rejected(fake: FakeOpenAI) -> None:
    with pytest.raises(ValueError):
        fake.fault("explode")  # type: ignore[arg-type]


# -- chat: rules --------------------------------------------------------------------------------


async def test_rules_match_last_user_message_before_fifo(fake: FakeOpenAI, http: Http) -> None:
    fake.reply(text="queued")
    rule = fake.when(contains="weather", text="It is sunny.")
    llm = chat(fake, http)
    assert (await llm.ainvoke("What's the WEATHER like?")).content == "It is sunny."
    assert (await llm.ainvoke("tell me a joke")).content == "queued"
    assert (await llm.ainvoke("weather again")).content == "It is sunny."
    assert rule.hits == 2
    fake.reset()
    assert (await llm.ainvoke("weather")).content == "Hello from the fake model."


async def test_rules_with_tool_loop_guard(fake: FakeOpenAI, http: Http) -> None:
    fake.when(
        contains="weather",
        tool_calls=[ToolCall(name="get_weather", args={"city": "Paris"})],
        after_tool=False,
    )
    fake.when(contains="weather", text="Sunny in Paris.", after_tool=True)
    llm = chat(fake, http)
    first = await llm.ainvoke([HumanMessage("weather in Paris?")])
    assert first.tool_calls[0]["args"] == {"city": "Paris"}
    history = [
        HumanMessage("weather in Paris?"),
        first,
        ToolMessage("22C, clear", tool_call_id=first.tool_calls[0]["id"]),
    ]
    second = await llm.ainvoke(history)
    assert second.content == "Sunny in Paris."
    assert fake.chat_requests[-1]["messages"][-1]["role"] == "tool"


async def test_rule_times_limit(fake: FakeOpenAI, http: Http) -> None:
    fake.when(contains="x", text="once", times=1)
    llm = chat(fake, http)
    assert (await llm.ainvoke("x")).content == "once"
    assert (await llm.ainvoke("x")).content == "Hello from the fake model."


# -- embeddings ---------------------------------------------------------------------------------


async def test_embeddings_deterministic_and_similar(fake: FakeOpenAI, http: Http) -> None:
    emb = embeddings(fake, http)
    docs = [
        "The cat sat on the mat",
        "A cat sat on a mat today",
        "Quarterly revenue grew in Europe",
    ]
    vectors = await emb.aembed_documents(docs)
    again = emb.embed_documents(docs)
    assert len(vectors) == 3 and all(len(v) == 1536 for v in vectors)
    # base64 (the openai client's default wire format) decodes to the float32 of the vector
    assert vectors == again
    assert vectors[0] == pytest.approx(embed_text(docs[0]), abs=1e-6)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-5)
    query = await emb.aembed_query("cat on the mat")
    assert cosine(query, vectors[0]) > cosine(query, vectors[2]) + 0.3
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert fake.embedding_requests[0]["encoding_format"] == "base64"
    assert fake.chat_requests == []


def test_embeddings_dimensions_and_float_format(fake: FakeOpenAI, http: Http) -> None:
    client = openai.OpenAI(
        base_url=fake.base_url, api_key="test", max_retries=0, http_client=http.sync
    )
    resp = client.embeddings.create(
        model="text-embedding-3-small", input="hello world", dimensions=64, encoding_format="float"
    )
    assert resp.model == "text-embedding-3-small"
    assert resp.data[0].embedding == pytest.approx(embed_text("hello world", 64))
    assert len(embeddings(fake, http, dimensions=32).embed_query("x")) == 32


def test_embeddings_token_id_input(fake: FakeOpenAI) -> None:
    url = fake.base_url + "/embeddings"
    for payload, count in (([[1, 2, 3], [4, 5]], 2), ([7, 8, 9], 1), (["a", "b", "c"], 3)):
        r = httpx.post(url, json={"model": "m", "input": payload, "dimensions": 16})
        assert r.status_code == 200
        data = r.json()["data"]
        assert [d["index"] for d in data] == list(range(count))
        assert all(len(d["embedding"]) == 16 for d in data)
    r = httpx.post(url, json={"model": "m", "input": [1, 2], "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(struct.unpack("<1536f", raw)) == 1536
    assert httpx.post(url, json={"model": "m", "input": 5}).status_code == 400


def test_empty_text_embedding_is_unit_vector() -> None:
    vec = embed_text("", 8)
    assert vec == [1.0, 0, 0, 0, 0, 0, 0, 0]


async def test_embeddings_fail(fake: FakeOpenAI, http: Http) -> None:
    fake.fail(status=503, endpoint="embeddings")
    with pytest.raises(openai.InternalServerError):
        await embeddings(fake, http, max_retries=0).aembed_query("x")
    assert len(await embeddings(fake, http).aembed_query("x")) == 1536


# -- misc HTTP ----------------------------------------------------------------------------------


def test_models_and_404(fake: FakeOpenAI, http: Http) -> None:
    client = openai.OpenAI(
        base_url=fake.base_url, api_key="test", max_retries=0, http_client=http.sync
    )
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    r = httpx.post(fake.base_url + "/nope", json={})
    assert r.status_code == 404
    assert "error" in r.json()
    r = httpx.post(fake.base_url + "/chat/completions", content=b"{not json")
    assert r.status_code == 400


def test_start_stop_restart() -> None:
    fake = FakeOpenAI(default_text="standalone")
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    fake.start()
    try:
        r = httpx.post(
            fake.base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.json()["choices"][0]["message"]["content"] == "standalone"
    finally:
        fake.stop()
    fake.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(fake.base_url + "/models")


def test_cli_serves_n_tokens() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--tokens", "5"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("ready http://127.0.0.1:")
            base_url = line.split(" ", 1)[1]
            with openai.DefaultHttpxClient() as http:
                llm = ChatOpenAI(
                    base_url=base_url,
                    api_key="test",
                    model="gpt-4o-mini",
                    streaming=True,
                    http_client=http,
                )
                chunks = [c.content for c in llm.stream("hi") if c.content]
            assert chunks == ["tok0", " tok1", " tok2", " tok3", " tok4"]
        finally:
            proc.terminate()
            proc.wait(5)
    assert proc.returncode == 0
