"""Attachments (direct and two-phase uploads) reach the thread's retrieval."""

from __future__ import annotations

from typing import Any

import psycopg
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentDeleteParams,
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ThreadAddUserMessageParams,
    ThreadCreateParams,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    UserMessageItem,
)
from pydantic import TypeAdapter

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.protocols.chatkit.helpers import ChatKit, created_thread, deltas, user_input
from tests.runs.helpers import create_assistant, messages

ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
RAG = {"configurable": {"type": "chat_retrieval"}}
NOTES = b"Project notes.\n\nThe secret word of the project is marmalade.\n"


def _documents(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM document WHERE namespace = %s", (f"thread:{thread_id}",)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _direct(client: Any, name: str, data: bytes, mime: str) -> Any:
    return client.post("/chatkit/upload", files={"file": (name, data, mime)})


def test_direct_upload_reaches_retrieval(
    loom: LoomServer, fake_llm: FakeOpenAI, database_url: str
) -> None:
    client = loom.client("alice")
    ck = ChatKit(client)
    r = _direct(client, "notes.txt", NOTES, "text/plain")
    assert r.status_code == 200, r.text
    attachment = ATTACHMENT.validate_json(r.content)
    assert (attachment.name, attachment.mime_type, attachment.type) == (
        "notes.txt",
        "text/plain",
        "file",
    )
    assert attachment.upload_descriptor is None and "metadata" not in r.json()

    assistant_id = create_assistant(client, RAG, name="rag")
    fake_llm.reply(text="It is marmalade.")
    req = ThreadsCreateReq(
        params=ThreadCreateParams(input=user_input("What is the secret word?", [attachment.id])),
        metadata={"assistant_id": assistant_id},
    )
    events = ck.stream(req)
    thread_id = created_thread(events)
    assert "".join(deltas(events)) == "It is marmalade."
    assert _documents(database_url, thread_id) > 0
    retrieved = [m for m in messages(client, thread_id) if m["type"] == "tool"]
    assert retrieved and "marmalade" in retrieved[0]["content"]
    user = ck.all_items(thread_id)[0]
    assert isinstance(user, UserMessageItem)
    assert [a.id for a in user.attachments] == [attachment.id]
    assert user.attachments[0].thread_id == thread_id

    # Deleting the attachment removes the documents it became.
    r = ck.post(AttachmentsDeleteReq(params=AttachmentDeleteParams(attachment_id=attachment.id)))
    assert (r.status_code, r.json()) == (200, {})
    assert _documents(database_url, thread_id) == 0


def test_two_phase_upload(loom: LoomServer, fake_llm: FakeOpenAI, database_url: str) -> None:
    client = loom.client("carol")  # no assistant yet: ChatKit makes her default one
    ck = ChatKit(client)
    fake_llm.reply(text="Noted.")
    thread_id = created_thread(ck.stream(_create("hello")))
    [default] = client.get("/assistants").json()
    assert default["name"] == "ChatKit"
    assert default["config"]["configurable"]["type"] == "agent"
    assert client.get(f"/threads/{thread_id}").json()["assistant_id"] == default["assistant_id"]

    req = AttachmentsCreateReq(
        params=AttachmentCreateParams(name="plan.md", size=len(NOTES), mime_type="text/markdown")
    )
    created = ck.json(req, ATTACHMENT)
    assert created.upload_descriptor is not None
    assert created.upload_descriptor.method == "POST"
    url = str(created.upload_descriptor.url)
    assert url == f"{loom.url}/chatkit/attachments/{created.id}/upload"
    # Someone else cannot upload to it.
    other = loom.client("bob").post(url, files={"file": ("plan.md", NOTES, "text/markdown")})
    assert other.status_code == 404
    r = client.post(url, files={"file": ("plan.md", NOTES, "text/markdown")})
    assert r.status_code == 200, r.text
    uploaded = ATTACHMENT.validate_json(r.content)
    assert uploaded.id == created.id and uploaded.upload_descriptor is None

    fake_llm.reply(text="Read it.")
    req2 = ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(
            thread_id=thread_id, input=user_input("see attached", [created.id])
        )
    )
    assert "".join(deltas(ck.stream(req2))) == "Read it."
    assert _documents(database_url, thread_id) > 0
    # The model is told which files came with the message.
    prompt = fake_llm.chat_requests[-1]["messages"]
    assert prompt[-1]["content"] == "see attached\n\n[Attached files: plan.md]"


def test_attachment_refusals(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    ck = ChatKit(client)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    assert _direct(client, "picture.png", png, "image/png").status_code == 415
    req = AttachmentsCreateReq(
        params=AttachmentCreateParams(name="movie.mp4", size=10, mime_type="video/mp4")
    )
    assert ck.post(req).status_code == 415
    assert client.post("/chatkit/upload", data={"nofile": "x"}).status_code == 400
    # One part, the file, and nothing else.
    extra = client.post("/chatkit/upload", data={"x": "1"}, files={"file": ("a.txt", b"a")})
    assert extra.status_code == 400
    # What attachments.create announces is validated as the OpenAPI document says: a size is a
    # JSON integer (5.0 is one, true is not), within the upload limit.
    announce = {
        "type": "attachments.create",
        "params": {"name": "a.txt", "mime_type": "text/plain"},
    }
    for size, status in ((5.0, 200), (True, 400), (-1, 400), (10**12, 400)):
        body = {**announce, "params": {**announce["params"], "size": size}}
        assert client.post("/chatkit", json=body).status_code == status, size
    assert (
        loom.client(None).post("/chatkit/upload", files={"file": ("a.txt", b"a")}).status_code
        == 401
    )

    # Another user's attachment is not found, wherever it is used.
    mine = ATTACHMENT.validate_json(_direct(client, "mine.txt", NOTES, "text/plain").content)
    bob = ChatKit(loom.client("bob"))
    req2 = ThreadsCreateReq(params=ThreadCreateParams(input=user_input("steal", [mine.id])))
    assert bob.post(req2).status_code == 404
    delete = AttachmentsDeleteReq(params=AttachmentDeleteParams(attachment_id=mine.id))
    assert bob.post(delete).status_code == 404
    assert ck.post(delete).status_code == 200


def _create(text: str) -> ThreadsCreateReq:
    return ThreadsCreateReq(params=ThreadCreateParams(input=user_input(text)))
