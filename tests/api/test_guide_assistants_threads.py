"""OpenGPTs' API guide, "Create an Assistant" and "Create a thread", request by request.

The requests are sent with ``requests`` exactly as the guide writes them (plain
``requests.post(url, json=..., cookies={"opengpts_user_id": ...})``), against a real server.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.conftest import LoomServer

COOKIES = {"opengpts_user_id": "foo"}

GUIDE_CONFIG = {
    "configurable": {
        "type": "agent",
        "type==agent/agent_type": "GPT 3.5 Turbo",
        "type==agent/system_message": "You are a helpful assistant",
        "type==agent/tools": ["Wikipedia"],
    }
}

RAG_CONFIG = {
    "configurable": {
        "type": "chat_retrieval",
        "type==chat_retrieval/llm_type": "GPT 3.5 Turbo",
        "type==chat_retrieval/system_message": "You are a helpful assistant",
    }
}

ASSISTANT_KEYS = {"assistant_id", "name", "config", "public", "user_id", "updated_at"}
THREAD_KEYS = {"thread_id", "assistant_id", "name", "user_id", "updated_at", "metadata"}


def _uuid(value: Any) -> str:
    assert isinstance(value, str)
    assert str(uuid.UUID(value)) == value
    return value


def _timestamp(value: Any) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def _check_assistant(body: dict[str, Any], name: str, config: Any, public: bool, user: str) -> str:
    assert set(body) == ASSISTANT_KEYS
    _timestamp(body["updated_at"])
    expected = {
        "assistant_id": _uuid(body["assistant_id"]),
        "name": name,
        "config": config,
        "public": public,
        "user_id": user,
        "updated_at": body["updated_at"],
    }
    assert body == expected
    return body["assistant_id"]


def _check_thread(body: dict[str, Any], name: str, assistant_id: str, user: str) -> str:
    assert set(body) == THREAD_KEYS
    _timestamp(body["updated_at"])
    assert body == {
        "thread_id": _uuid(body["thread_id"]),
        "assistant_id": assistant_id,
        "name": name,
        "user_id": user,
        "updated_at": body["updated_at"],
        "metadata": {},
    }
    return body["thread_id"]


@pytest.fixture(params=["", "/"], ids=["no-slash", "slash"])
def slash(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_create_assistant_default_config(loom: LoomServer, slash: str) -> None:
    # The guide's first request, verbatim.
    response = requests.post(
        f"{loom.url}/assistants{slash}",
        json={"name": "bar", "config": {"configurable": {}}, "public": True},
        cookies={"opengpts_user_id": "foo"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    _check_assistant(response.json(), "bar", {"configurable": {}}, True, "foo")


def test_create_assistant_guide_config(loom: LoomServer, slash: str) -> None:
    response = requests.post(
        f"{loom.url}/assistants{slash}",
        json={"name": "bar", "config": GUIDE_CONFIG, "public": True},
        cookies=COOKIES,
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assistant_id = _check_assistant(response.json(), "bar", GUIDE_CONFIG, True, "foo")

    # Stored exactly as sent: the prefixed keys are not rewritten.
    again = requests.get(
        f"{loom.url}/assistants/{assistant_id}{slash}",
        cookies=COOKIES,
        allow_redirects=False,
        timeout=30,
    )
    assert again.status_code == 200
    assert again.json() == response.json()


def test_assistant_lifecycle(loom: LoomServer, slash: str) -> None:
    user = f"owner-{uuid.uuid4().hex[:8]}"
    cookies = {"opengpts_user_id": user}
    base = f"{loom.url}/assistants"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, base + path, cookies=cookies, allow_redirects=False, timeout=30, **kwargs
        )

    empty = call("GET", slash)
    assert empty.status_code == 200
    assert empty.json() == []

    private = call("POST", slash, json={"name": "mine", "config": GUIDE_CONFIG, "public": False})
    assert private.status_code == 200, private.text
    private_id = _check_assistant(private.json(), "mine", GUIDE_CONFIG, False, user)
    public = call("POST", slash, json={"name": "shared", "config": GUIDE_CONFIG, "public": True})
    assert public.status_code == 200, public.text
    public_id = _check_assistant(public.json(), "shared", GUIDE_CONFIG, True, user)

    # Own list: both, newest first.
    listed = call("GET", slash)
    assert listed.status_code == 200
    assert listed.json() == [public.json(), private.json()]

    # Public list: the public one only (other modules' tests may add theirs).
    shared = call("GET", f"/public{slash}")
    assert shared.status_code == 200
    public_list = shared.json()
    assert public.json() in public_list
    assert all(a["public"] is True for a in public_list)
    assert private_id not in {a["assistant_id"] for a in public_list}

    # GET one.
    one = call("GET", f"/{private_id}{slash}")
    assert one.status_code == 200
    assert one.json() == private.json()

    # PUT: every field replaced, the id and owner kept, updated_at moves forward.
    new_config = {"configurable": {"type": "chatbot", "type==chatbot/llm_type": "GPT 4o Mini"}}
    put = call(
        "PUT",
        f"/{private_id}{slash}",
        json={"name": "renamed", "config": new_config, "public": True},
    )
    assert put.status_code == 200, put.text
    _check_assistant(put.json(), "renamed", new_config, True, user)
    assert put.json()["assistant_id"] == private_id
    assert _timestamp(put.json()["updated_at"]) >= _timestamp(private.json()["updated_at"])
    assert call("GET", f"/{private_id}{slash}").json() == put.json()

    # DELETE, then it is gone everywhere.
    deleted = call("DELETE", f"/{private_id}{slash}")
    assert deleted.status_code == 200
    assert deleted.json() == {"status": "ok"}
    gone = call("GET", f"/{private_id}{slash}")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Assistant not found"}
    assert [a["assistant_id"] for a in call("GET", slash).json()] == [public_id]
    assert call("DELETE", f"/{private_id}{slash}").status_code == 404


def test_thread_lifecycle(loom: LoomServer, slash: str) -> None:
    created = requests.post(
        f"{loom.url}/assistants",
        json={"name": "bar", "config": GUIDE_CONFIG, "public": True},
        cookies=COOKIES,
        timeout=30,
    ).json()
    assistant_id = created["assistant_id"]

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{loom.url}/threads{path}",
            cookies=COOKIES,
            allow_redirects=False,
            timeout=30,
            **kwargs,
        )

    before = {t["thread_id"] for t in call("GET", slash).json()}

    # The guide's request, verbatim apart from the ids.
    response = requests.post(
        f"{loom.url}/threads{slash}",
        cookies={"opengpts_user_id": "foo"},
        json={"name": "hi", "assistant_id": assistant_id},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    thread = response.json()
    thread_id = _check_thread(thread, "hi", assistant_id, "foo")

    listed = call("GET", slash)
    assert listed.status_code == 200
    threads = listed.json()
    assert threads[0] == thread  # newest first
    assert {t["thread_id"] for t in threads} == before | {thread_id}

    one = call("GET", f"/{thread_id}{slash}")
    assert one.status_code == 200
    assert one.json() == thread

    # An empty thread's state, as in the guide (Loom adds "next").
    state = call("GET", f"/{thread_id}/state{slash}")
    assert state.status_code == 200
    assert state.json() == {"values": [], "next": []}

    renamed = call(
        "PUT", f"/{thread_id}{slash}", json={"name": "hi again", "assistant_id": assistant_id}
    )
    assert renamed.status_code == 200, renamed.text
    _check_thread(renamed.json(), "hi again", assistant_id, "foo")
    assert renamed.json()["thread_id"] == thread_id
    assert _timestamp(renamed.json()["updated_at"]) >= _timestamp(thread["updated_at"])
    assert call("GET", f"/{thread_id}{slash}").json() == renamed.json()

    deleted = call("DELETE", f"/{thread_id}{slash}")
    assert deleted.status_code == 200
    assert deleted.json() == {"status": "ok"}
    gone = call("GET", f"/{thread_id}{slash}")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Thread not found"}
    assert call("GET", f"/{thread_id}/state{slash}").status_code == 404
    assert {t["thread_id"] for t in call("GET", slash).json()} == before


def test_empty_state_of_a_rag_thread(loom: LoomServer, slash: str) -> None:
    assistant = requests.post(
        f"{loom.url}/assistants",
        json={"name": "rag", "config": RAG_CONFIG, "public": False},
        cookies=COOKIES,
        timeout=30,
    )
    assert assistant.status_code == 200, assistant.text
    _check_assistant(assistant.json(), "rag", RAG_CONFIG, False, "foo")
    thread = requests.post(
        f"{loom.url}/threads",
        json={"name": "hi", "assistant_id": assistant.json()["assistant_id"]},
        cookies=COOKIES,
        timeout=30,
    )
    assert thread.status_code == 200, thread.text
    state = requests.get(
        f"{loom.url}/threads/{thread.json()['thread_id']}/state{slash}",
        cookies=COOKIES,
        allow_redirects=False,
        timeout=30,
    )
    assert state.status_code == 200
    assert state.json() == {"values": {"messages": []}, "next": []}


def test_guide_chatbot_state_round_trip(loom: LoomServer) -> None:
    # "Add a message": the guide's POST state body, then GET state shows it.
    assistant_id = requests.post(
        f"{loom.url}/assistants",
        json={"name": "bar", "config": GUIDE_CONFIG, "public": True},
        cookies=COOKIES,
        timeout=30,
    ).json()["assistant_id"]
    thread_id = requests.post(
        f"{loom.url}/threads",
        json={"name": "hi", "assistant_id": assistant_id},
        cookies=COOKIES,
        timeout=30,
    ).json()["thread_id"]
    posted = requests.post(
        f"{loom.url}/threads/{thread_id}/state",
        cookies=COOKIES,
        json={"values": [{"content": "hi! my name is bob", "type": "human"}]},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    state = requests.get(f"{loom.url}/threads/{thread_id}/state", cookies=COOKIES, timeout=30)
    assert state.status_code == 200
    body = state.json()
    assert body["next"] == []
    assert [(m["type"], m["content"]) for m in body["values"]] == [("human", "hi! my name is bob")]
    assert posted.json() == body
