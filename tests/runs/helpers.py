"""Small helpers shared by the run tests: assistants, threads, polling a run."""

from __future__ import annotations

import time
from typing import Any

import requests

CHATBOT = {"configurable": {"type": "chatbot"}}
RAGBOT = {"configurable": {"type": "chat_retrieval"}}
TERMINAL = {"success", "error", "interrupted", "cancelled"}


def agent_config(tools: list[Any], **extra: Any) -> dict[str, Any]:
    return {"configurable": {"type": "agent", "type==agent/tools": tools, **extra}}


def create_assistant(client: requests.Session, config: dict[str, Any], name: str = "a") -> str:
    r = client.post("/assistants", json={"name": name, "config": config, "public": False})
    assert r.status_code == 200, r.text
    assistant_id = r.json()["assistant_id"]
    assert isinstance(assistant_id, str)
    return assistant_id


def create_thread(client: requests.Session, assistant_id: str, name: str = "t") -> str:
    r = client.post("/threads", json={"name": name, "assistant_id": assistant_id})
    assert r.status_code == 200, r.text
    thread_id = r.json()["thread_id"]
    assert isinstance(thread_id, str)
    return thread_id


def new_thread(client: requests.Session, config: dict[str, Any] = CHATBOT) -> tuple[str, str]:
    assistant_id = create_assistant(client, config)
    return assistant_id, create_thread(client, assistant_id)


def human(text: str) -> dict[str, Any]:
    return {"content": text, "type": "human"}


def run_body(thread_id: str, *texts: str, assistant_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "thread_id": thread_id,
        "input": {"messages": [human(t) for t in texts]},
    }
    if assistant_id is not None:
        body["assistant_id"] = assistant_id
    return body


def wait_run(
    client: requests.Session, run_id: str, until: set[str] = TERMINAL, polls: int = 600
) -> dict[str, Any]:
    """Poll ``GET /runs/{id}`` until its status is in ``until`` (bounded number of polls)."""
    for _ in range(polls):
        r = client.get(f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        run = r.json()
        assert isinstance(run, dict)
        if run["status"] in until:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not reach {sorted(until)}: {run}")


def state(client: requests.Session, thread_id: str) -> dict[str, Any]:
    r = client.get(f"/threads/{thread_id}/state")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict)
    return body


def messages(client: requests.Session, thread_id: str) -> list[dict[str, Any]]:
    values = state(client, thread_id)["values"]
    if isinstance(values, dict):
        values = values["messages"]
    assert isinstance(values, list)
    return values


def history(client: requests.Session, thread_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The whole history, newest first, walked page by page with ``before``."""
    out: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if before:
            params["before"] = before
        r = client.get(f"/threads/{thread_id}/history", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page)
        if len(page) < limit:
            return out
        before = page[-1]["checkpoint_id"]
