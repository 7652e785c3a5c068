"""A ChatKit front end authenticates with a Loom API key (``Authorization: Bearer``) as its
user, like every other surface; a revoked key or another user's key gets nothing."""

from __future__ import annotations

from chatkit.types import ThreadGetByIdParams, ThreadsGetByIdReq

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.protocols.chatkit.helpers import (
    ChatKit,
    assistant_texts,
    create_req,
    created_thread,
    done_items,
)


def _key(loom: LoomServer, user: str) -> tuple[str, str]:
    r = loom.client(user).post("/api-keys", json={"name": "chatkit front end"})
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["key"]


def test_api_key_authenticates_chatkit(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    key_id, key = _key(loom, "carol")
    ck = ChatKit(loom.client(None, Authorization=f"Bearer {key}"))
    fake_llm.reply(text="Hello through a key.")
    events = ck.stream(create_req("hi"))
    assert assistant_texts(done_items(events)) == ["Hello through a key."]
    thread_id = created_thread(events)
    # the thread is carol's: her cookie session sees it natively, another user's key does not
    assert loom.client("carol").get(f"/threads/{thread_id}").status_code == 200
    _, dave_key = _key(loom, "dave")
    dave = ChatKit(loom.client(None, Authorization=f"Bearer {dave_key}"))
    r = dave.post(ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id)))
    assert r.status_code == 404
    # a revoked key is refused
    assert loom.client("carol").delete(f"/api-keys/{key_id}").status_code in (200, 204)
    r = ck.post(ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id)))
    assert r.status_code == 401
