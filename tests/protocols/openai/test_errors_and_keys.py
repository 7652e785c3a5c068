"""Errors in OpenAI's shape with the SDK's exception classes; API keys (create, list, revoke,
last use) authenticating on every surface; one user's key sees nothing of another's."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI

from .conftest import api_key, sdk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _error_body(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_error_shapes(client: openai.OpenAI, loom: LoomServer) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.assistants.retrieve("asst_" + "0" * 32)
    error = _error_body(missing.value)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == f"No assistant found with id 'asst_{'0' * 32}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve("not-an-id")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_x", thread_id="thread_y")

    with pytest.raises(openai.BadRequestError) as invalid:
        client.beta.assistants.create(model="no-such-model")
    assert "unknown model" in _error_body(invalid.value)["message"]  # type: ignore[operator]
    with pytest.raises(openai.BadRequestError) as bad_field:
        client.beta.assistants.create(model="gpt-4o-mini", temperature=7)
    assert _error_body(bad_field.value)["param"] == "temperature"

    unauthenticated = sdk(loom, "loom_sk_not-a-real-key")
    with pytest.raises(openai.AuthenticationError) as denied:
        unauthenticated.beta.assistants.list()
    assert _error_body(denied.value)["code"] == "invalid_api_key"
    # Without any key (the SDK insists on one, so plain HTTP), and with the development
    # cookie, which /v1 does not accept: 401 in OpenAI's shape.
    for extra in ({}, {"cookies": {"opengpts_user_id": "alice"}}):
        r = httpx.get(f"{loom.url}/v1/assistants", **extra)  # type: ignore[arg-type]
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "invalid_request_error"
    # An unknown /v1 path is a 404 in OpenAI's shape; the native API keeps its own.
    r = httpx.get(f"{loom.url}/v1/nothing-here", headers={"Authorization": "Bearer x"})
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(f"{loom.url}/threads/nope", cookies={"opengpts_user_id": "alice"})
    assert r.status_code == 404 and r.json() == {"detail": "Thread not found"}


def test_api_keys(loom: LoomServer) -> None:
    web = loom.client("carol")
    created = web.post("/api-keys", json={"name": "laptop"})
    assert created.status_code == 200
    key = created.json()
    assert key["key"].startswith("loom_sk_") and key["name"] == "laptop"
    assert key["last_used_at"] is None
    listed = web.get("/api-keys").json()
    assert [(k["id"], k["name"], k["hint"]) for k in listed] == [(key["id"], "laptop", key["hint"])]
    assert "key" not in listed[0]

    # The key is its user on every surface: /v1 and the native API.
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert httpx.get(f"{loom.url}/me", headers=bearer).json() == {"user_id": "carol"}
    client = sdk(loom, key["key"])
    made = client.beta.assistants.create(model="gpt-4o-mini", name="Carol's")
    native = httpx.get(f"{loom.url}/assistants", headers=bearer).json()
    assert [a["name"] for a in native] == ["Carol's"]
    assert made.id == "asst_" + native[0]["assistant_id"].replace("-", "")
    assert web.get("/api-keys").json()[0]["last_used_at"] is not None

    # A key cannot manage keys; revoking one makes it useless at once.
    r = httpx.post(f"{loom.url}/api-keys", headers=bearer, json={"name": "more"})
    assert r.status_code == 403
    assert web.delete(f"/api-keys/{key['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client.beta.assistants.list()
    assert httpx.get(f"{loom.url}/me", headers=bearer).status_code == 401
    assert web.get("/api-keys").json() == []
    assert loom.client("dave").delete(f"/api-keys/{key['id']}").status_code == 404


def test_isolation(
    client_for: Callable[[str], openai.OpenAI], loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    alice, mallory = client_for("alice"), sdk(loom, api_key(loom, "mallory"))
    assistant = alice.beta.assistants.create(model="gpt-4o-mini", name="Private")
    thread = alice.beta.threads.create(messages=[{"role": "user", "content": "secret"}])
    fake_llm.reply(text="Secret answer.")
    run = alice.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    [message] = alice.beta.threads.messages.list(thread.id, limit=1).data
    uploaded = alice.files.create(file=("a.txt", b"alice's notes"), purpose="assistants")
    store = alice.vector_stores.create(name="alice", file_ids=[uploaded.id])

    assert assistant.id not in [a.id for a in mallory.beta.assistants.list().data]
    assert uploaded.id not in [f.id for f in mallory.files.list().data]
    assert store.id not in [s.id for s in mallory.vector_stores.list().data]
    attempts: list[Callable[[], object]] = [
        lambda: mallory.beta.assistants.retrieve(assistant.id),
        lambda: mallory.beta.assistants.update(assistant.id, name="mine"),
        lambda: mallory.beta.assistants.delete(assistant.id),
        lambda: mallory.beta.threads.retrieve(thread.id),
        lambda: mallory.beta.threads.update(thread.id, metadata={"a": "b"}),
        lambda: mallory.beta.threads.delete(thread.id),
        lambda: mallory.beta.threads.messages.list(thread.id),
        lambda: mallory.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        lambda: mallory.beta.threads.messages.create(thread.id, role="user", content="hi"),
        lambda: mallory.beta.threads.runs.list(thread.id),
        lambda: mallory.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda: mallory.beta.threads.runs.cancel(run.id, thread_id=thread.id),
        lambda: mallory.beta.threads.runs.steps.list(run.id, thread_id=thread.id),
        lambda: mallory.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id),
        lambda: mallory.files.retrieve(uploaded.id),
        lambda: mallory.files.content(uploaded.id),
        lambda: mallory.files.delete(uploaded.id),
        lambda: mallory.vector_stores.retrieve(store.id),
        lambda: mallory.vector_stores.files.list(store.id),
        lambda: mallory.vector_stores.create(file_ids=[uploaded.id]),
        lambda: mallory.beta.assistants.create(
            model="gpt-4o-mini",
            tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        ),
    ]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    # Mallory's own run cannot use Alice's assistant either.
    own = mallory.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        mallory.beta.threads.runs.create(thread_id=own.id, assistant_id=assistant.id)
    # Nothing of Alice's changed.
    assert alice.beta.assistants.retrieve(assistant.id).name == "Private"
    assert alice.files.retrieve(uploaded.id).filename == "a.txt"
