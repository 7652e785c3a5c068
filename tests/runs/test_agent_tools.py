"""The ``agent`` type with tools: tool calls, tool errors, parallel calls, approve/edit/reject.

Tools reach the fake tool APIs (``tests/fakes/tool_apis.py``), never the internet; the model
is the fake OpenAI server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LoomServer, make_settings, start_loom
from tests.fakes.openai_server import FakeOpenAI, ToolCall
from tests.fakes.tool_apis import FakeToolApis
from tests.runs.helpers import (
    agent_config,
    history,
    messages,
    new_thread,
    run_body,
    state,
)
from tests.runs.sse_client import apply_patches, check_shape, stream_run

FETCHER = "Web page fetcher"
INTERRUPT = {"type==agent/interrupt_before_action": True}


@pytest.fixture(scope="module")
def tool_apis() -> Iterator[FakeToolApis]:
    with FakeToolApis() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    database_url: str,
    fake_llm: FakeOpenAI,
    tool_apis: FakeToolApis,
    request: pytest.FixtureRequest,
) -> Iterator[LoomServer]:
    base = tool_apis.base_url
    settings = make_settings(
        database_url,
        fake_llm,
        wikipedia_base_url=f"{base}/wikipedia/w/api.php",
        fetch_allow_private=True,  # the fake pages are on 127.0.0.1
        tool_timeout_seconds=5.0,
    )
    with start_loom(settings, request) as loom:
        yield loom


@pytest.fixture(autouse=True)
def _reset_tools(tool_apis: FakeToolApis) -> None:
    tool_apis.reset()


def _types(values: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in values]


def _call(values: dict[str, Any]) -> dict[str, Any]:
    return {"name": values["name"], "args": values["args"], "id": values["id"]}


def _openai_calls(message: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message["tool_calls"]
    ]


def test_tool_call_then_answer(
    server: LoomServer, fake_llm: FakeOpenAI, tool_apis: FakeToolApis
) -> None:
    client = server.client("alice")
    _, thread_id = new_thread(client, agent_config([FETCHER]))
    url = f"{tool_apis.base_url}/page.html"
    first = fake_llm.reply(tool_calls=[ToolCall("web_fetch", {"url": url}, id="call_page")])
    second = fake_llm.reply(text="The page is about weaving agents.")

    stream = stream_run(client, run_body(thread_id, "What is on that page?"), fmt="compact")
    check_shape(stream)
    assert "error" not in stream.names
    run = client.get(f"/runs/{stream.run_id}").json()
    assert run["status"] == "success"

    values = messages(client, thread_id)
    assert _types(values) == ["human", "ai", "tool", "ai"]
    human, call_msg, tool_msg, answer = values
    assert human["content"] == "What is on that page?"
    assert [_call(c) for c in call_msg["tool_calls"]] == [
        {"name": "web_fetch", "args": {"url": url}, "id": "call_page"}
    ]
    assert tool_msg["tool_call_id"] == "call_page"
    assert tool_msg["name"] == "web_fetch"
    assert tool_msg["status"] == "success"
    assert tool_msg["content"].startswith(f"URL: {url}\nTitle: Loom test page\n")
    assert "Weaving agents" in tool_msg["content"]
    assert "secretScript" not in tool_msg["content"]
    assert answer["content"] == "The page is about weaving agents."
    assert [r.path for r in tool_apis.requests] == ["/page.html"]

    # The stream shows the same messages in the same order: AI(tool call) -> tool -> AI.
    rebuilt: list[dict[str, Any]] = []
    order: list[str] = []
    for event in stream.data:
        apply_patches(rebuilt, event)
        order.extend(p["id"] for p in event if "type" in p and p["id"] not in order)
    assert rebuilt == values
    assert order == [m["id"] for m in values]

    # What the model was told: the tool call, then exactly the tool's output.
    assert len(first.requests) == 1
    [request] = second.requests
    assert _openai_calls(request["messages"][-2]) == [("call_page", "web_fetch", {"url": url})]
    assert request["messages"][-1] == {
        "role": "tool",
        "content": tool_msg["content"],
        "tool_call_id": "call_page",
    }
    # input, start, agent, action, agent
    assert len(history(client, thread_id)) == 5


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            ToolCall("web_fetch", {"url": "{base}/image.png"}, id="c1"),
            "Error: {base}/image.png is image/png (72 bytes), not a text document",
            id="tool-refuses",
        ),
        pytest.param(
            ToolCall("wikipedia", {"query": "Alan Turing"}, id="c1"),
            "Error: wikipedia: the service answered HTTP 500",
            id="service-500",
        ),
        pytest.param(
            ToolCall("no_such_tool", {"x": "1"}, id="c1"),
            "Error: there is no tool named 'no_such_tool'.",
            id="unknown-tool",
        ),
        pytest.param(
            ToolCall("web_fetch", {"link": "x"}, id="c1"),
            "Error: invalid arguments for web_fetch",
            id="bad-arguments",
        ),
        pytest.param(
            ToolCall("web_fetch", "this is not json", id="c1"),
            "Error: the arguments of this web_fetch call are not valid JSON.",
            id="arguments-not-json",
        ),
    ],
)
def test_tool_error_becomes_a_tool_message(
    server: LoomServer,
    fake_llm: FakeOpenAI,
    tool_apis: FakeToolApis,
    call: ToolCall,
    expected: str,
) -> None:
    client = server.client("alice")
    _, thread_id = new_thread(client, agent_config([FETCHER, "Wikipedia"]))
    tool_apis.fail("/wikipedia", 500)
    base = tool_apis.base_url
    if isinstance(call.args, dict):
        call = ToolCall(call.name, {k: v.format(base=base) for k, v in call.args.items()}, call.id)
    fake_llm.reply(tool_calls=[call])
    final = fake_llm.reply(text="Sorry, that did not work.")

    stream = stream_run(client, run_body(thread_id, "try the tool"))
    check_shape(stream)
    assert "error" not in stream.names
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"

    values = messages(client, thread_id)
    assert _types(values) == ["human", "ai", "tool", "ai"]
    tool_msg = values[2]
    assert tool_msg["tool_call_id"] == "c1"
    assert tool_msg["content"].startswith(expected.format(base=base)), tool_msg["content"]
    assert tool_msg["status"] == "error"
    assert values[3]["content"] == "Sorry, that did not work."
    [request] = final.requests
    assert request["messages"][-1]["content"] == tool_msg["content"]


def test_two_tool_calls_in_one_reply(
    server: LoomServer, fake_llm: FakeOpenAI, tool_apis: FakeToolApis
) -> None:
    client = server.client("alice")
    _, thread_id = new_thread(client, agent_config([FETCHER, "Wikipedia"]))
    page = f"{tool_apis.base_url}/plain.txt"
    fake_llm.reply(
        tool_calls=[
            ToolCall("web_fetch", {"url": page}, id="call_a"),
            ToolCall("wikipedia", {"query": "Alan Turing"}, id="call_b"),
        ]
    )
    final = fake_llm.reply(text="Both done.")
    stream = stream_run(client, run_body(thread_id, "do both"))
    check_shape(stream)
    assert "error" not in stream.names

    values = messages(client, thread_id)
    assert _types(values) == ["human", "ai", "tool", "tool", "ai"]
    assert [c["id"] for c in values[1]["tool_calls"]] == ["call_a", "call_b"]
    assert [(m["tool_call_id"], m["name"]) for m in values[2:4]] == [
        ("call_a", "web_fetch"),
        ("call_b", "wikipedia"),
    ]
    assert values[2]["content"] == f"URL: {page}\n\njust some plain text"
    assert "Page: Alan Turing" in values[3]["content"]
    assert {r.path for r in tool_apis.requests} >= {"/plain.txt", "/wikipedia/w/api.php"}
    [request] = final.requests
    assert [(m["role"], m.get("tool_call_id")) for m in request["messages"][-3:]] == [
        ("assistant", None),
        ("tool", "call_a"),
        ("tool", "call_b"),
    ]
    assert values[4]["content"] == "Both done."


def _interrupted_thread(
    client: Any, fake_llm: FakeOpenAI, calls: list[ToolCall]
) -> tuple[str, dict[str, Any]]:
    _, thread_id = new_thread(client, agent_config([FETCHER], **INTERRUPT))
    fake_llm.reply(tool_calls=calls)
    stream = stream_run(client, run_body(thread_id, "fetch it"))
    check_shape(stream)
    assert "error" not in stream.names
    run = client.get(f"/runs/{stream.run_id}").json()
    assert run["status"] == "interrupted"
    current = state(client, thread_id)
    assert current["next"] == ["action"]
    assert _types(current["values"]) == ["human", "ai"]
    assert current["values"] == stream.data[-1]
    return thread_id, current["values"][1]


def test_approve_with_edited_arguments(
    server: LoomServer, fake_llm: FakeOpenAI, tool_apis: FakeToolApis
) -> None:
    client = server.client("alice")
    base = tool_apis.base_url
    thread_id, pending = _interrupted_thread(
        client, fake_llm, [ToolCall("web_fetch", {"url": f"{base}/plain.txt"}, id="call_1")]
    )
    assert tool_apis.requests == []  # nothing ran before approval

    edited_url = f"{base}/page.html"
    edited = {
        "type": "ai",
        "id": pending["id"],
        "content": pending["content"],
        "tool_calls": [{"id": "call_1", "name": "web_fetch", "args": {"url": edited_url}}],
    }
    r = client.post(f"/threads/{thread_id}/state", json={"values": [edited]})
    assert r.status_code == 200, r.text
    after_edit = r.json()
    assert after_edit == state(client, thread_id)
    assert after_edit["next"] == ["action"]
    assert _types(after_edit["values"]) == ["human", "ai"]  # replaced by id, not appended
    assert after_edit["values"][1]["id"] == pending["id"]
    assert [_call(c) for c in after_edit["values"][1]["tool_calls"]] == [
        {"name": "web_fetch", "args": {"url": edited_url}, "id": "call_1"}
    ]

    final = fake_llm.reply(text="Approved and read.")
    stream = stream_run(client, {"thread_id": thread_id, "input": None})
    check_shape(stream)
    assert "error" not in stream.names
    assert client.get(f"/runs/{stream.run_id}").json()["status"] == "success"
    assert [r.path for r in tool_apis.requests] == ["/page.html"]

    current = state(client, thread_id)
    assert current["next"] == []
    values = current["values"]
    assert _types(values) == ["human", "ai", "tool", "ai"]
    assert values[2]["tool_call_id"] == "call_1"
    assert values[2]["content"].startswith(f"URL: {edited_url}\nTitle: Loom test page")
    assert values[3]["content"] == "Approved and read."
    [request] = final.requests
    assert _openai_calls(request["messages"][-2]) == [("call_1", "web_fetch", {"url": edited_url})]
    assert request["messages"][-1]["content"] == values[2]["content"]
    # the stream of the continued run: the tool result, then the answer
    assert [m["type"] for m in stream.data[-1]] == ["tool", "ai"]
    assert stream.data[-1] == values[2:]


def test_reject_with_tool_messages(
    server: LoomServer, fake_llm: FakeOpenAI, tool_apis: FakeToolApis
) -> None:
    client = server.client("alice")
    base = tool_apis.base_url
    thread_id, _ = _interrupted_thread(
        client,
        fake_llm,
        [
            ToolCall("web_fetch", {"url": f"{base}/admin"}, id="call_x"),
            ToolCall("web_fetch", {"url": f"{base}/big"}, id="call_y"),
        ],
    )
    rejections = [
        {"type": "tool", "tool_call_id": cid, "content": "The user rejected this call."}
        for cid in ("call_x", "call_y")
    ]
    r = client.post(f"/threads/{thread_id}/state", json={"values": rejections})
    assert r.status_code == 200, r.text
    assert r.json()["next"] == ["agent"]
    assert _types(r.json()["values"]) == ["human", "ai", "tool", "tool"]

    final = fake_llm.reply(text="Understood, I will not fetch them.")
    stream = stream_run(client, {"thread_id": thread_id, "input": None})
    check_shape(stream)
    assert "error" not in stream.names
    assert tool_apis.requests == []  # the rejected calls never ran
    current = state(client, thread_id)
    assert current["next"] == []
    assert _types(current["values"]) == ["human", "ai", "tool", "tool", "ai"]
    assert current["values"][-1]["content"] == "Understood, I will not fetch them."
    [request] = final.requests
    assert [
        (m["role"], m.get("tool_call_id"), m.get("content")) for m in request["messages"][-2:]
    ] == [
        ("tool", "call_x", "The user rejected this call."),
        ("tool", "call_y", "The user rejected this call."),
    ]
