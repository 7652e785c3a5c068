"""``POST /ingest`` end to end: real Postgres, the fake embeddings server, multipart uploads."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from loom.retrieval.jobs import STALE_MESSAGE
from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, embed_text
from tests.runs.helpers import CHATBOT, create_assistant, create_thread

from .helpers import count, ingest, make_docx, make_pdf, rows, wait_job

LONG_TEXT = "\n\n".join(
    f"Paragraph {i}: the quick brown fox number {i} jumps over the lazy dog near the river bank."
    for i in range(40)
)


@pytest.fixture(scope="module")
def alice_assistant(loom: LoomServer) -> str:
    return create_assistant(loom.client("alice"), CHATBOT, name="docs")


def test_ingest_each_type(loom: LoomServer, database_url: str, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="types")
    files = [
        ("notes.txt", LONG_TEXT.encode()),
        ("guide.md", b"# Guide\n\nMarkdown about **otters**.\n\n## More\n\nOtters hold hands."),
        (
            "page.html",
            b"<!doctype html><html><head><title>Zoo</title><style>p{}</style></head>"
            b"<body><h1>Giraffes</h1><p>Giraffes are tall.</p></body></html>",
        ),
        ("report.pdf", make_pdf(["Pelicans page one.", "Penguins page two."])),
        ("memo.docx", make_docx(["Walruses are large."], table=[["Seal", "Small"]])),
    ]
    r = ingest(client, files, assistant_id=assistant_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(f["filename"], f["content_type"]) for f in body] == [
        ("notes.txt", "text/plain"),
        ("guide.md", "text/markdown"),
        ("page.html", "text/html"),
        ("report.pdf", "application/pdf"),
        (
            "memo.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]
    counts = {f["filename"]: f["chunks"] for f in body}
    assert counts["notes.txt"] > 3  # 1000-character chunks of a ~3,600-character text
    assert counts["guide.md"] == counts["page.html"] == counts["memo.docx"] == 1
    assert counts["report.pdf"] == 2  # one chunk per page

    stored = rows(database_url, f"assistant:{assistant_id}")
    assert len(stored) == sum(counts.values())
    assert {str(r["id"]) for r in stored} == {i for f in body for i in f["ids"]}
    assert all(r["dims"] == 1536 for r in stored)
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in stored:
        by_file.setdefault(row["metadata"]["filename"], []).append(row)

    notes = by_file["notes.txt"]
    assert [r["metadata"]["chunk"] for r in notes] == list(range(len(notes)))
    assert all(len(str(r["content"])) <= 1000 for r in notes)
    assert notes[0]["metadata"] == {
        "source": "notes.txt",
        "filename": "notes.txt",
        "content_type": "text/plain",
        "chunk": 0,
    }
    pdf = by_file["report.pdf"]
    assert [(r["metadata"]["page"], r["content"]) for r in pdf] == [
        (1, "Pelicans page one."),
        (2, "Penguins page two."),
    ]
    assert "Giraffes are tall." in str(by_file["page.html"][0]["content"])
    assert "p{}" not in str(by_file["page.html"][0]["content"])
    assert str(by_file["memo.docx"][0]["content"]) == "Walruses are large.\nSeal | Small"
    assert str(by_file["guide.md"][0]["content"]).startswith("# Guide")

    # the embeddings came from the configured model, in batches, as plain strings
    requests_ = fake_llm.embedding_requests
    assert requests_ and all(req["model"] == "text-embedding-3-small" for req in requests_)
    assert all(req["dimensions"] == 1536 for req in requests_)
    sent = [text for req in requests_ for text in req["input"]]
    assert sorted(sent) == sorted(str(r["content"]) for r in stored)
    # and the stored vector is the one the provider returned for that text
    with psycopg.connect(database_url) as conn:
        got = conn.execute(
            "SELECT embedding::text FROM document WHERE id = %s", (stored[0]["id"],)
        ).fetchone()
    assert got is not None
    expected = embed_text(str(stored[0]["content"]), 1536)
    assert [round(float(x), 5) for x in got[0].strip("[]").split(",")] == [
        round(x, 5) for x in expected
    ]


def test_ingest_into_thread(loom: LoomServer, database_url: str, alice_assistant: str) -> None:
    client = loom.client("alice")
    thread_id = create_thread(client, alice_assistant)
    r = ingest(
        client, [("t.txt", b"Thread-only fact: the moon is made of rock.")], thread_id=thread_id
    )
    assert r.status_code == 200, r.text
    assert [r["content"] for r in rows(database_url, f"thread:{thread_id}")] == [
        "Thread-only fact: the moon is made of rock."
    ]


def test_config_as_a_json_part(loom: LoomServer, database_url: str, alice_assistant: str) -> None:
    # The OpenAPI document says config is JSON (multipart encoding): a client may send it as a
    # part of its own, with a filename and application/json; it is the config, not a file.
    client = loom.client("alice")
    thread_id = create_thread(client, alice_assistant)
    config = json.dumps({"configurable": {"thread_id": thread_id}}).encode()
    parts = [
        ("files", ("t.txt", b"A fact sent with a JSON config part.")),
        ("config", ("config.json", config, "application/json")),
    ]
    r = client.post("/ingest", files=parts)
    assert r.status_code == 200, r.text
    assert [f["filename"] for f in r.json()] == ["t.txt"]
    assert count(database_url, f"thread:{thread_id}") == 1
    body = client.get("/openapi.json").json()["paths"]["/ingest"]["post"]["requestBody"]
    assert body["content"]["multipart/form-data"]["encoding"]["config"] == {
        "contentType": "application/json"
    }


def test_opengpts_config_with_both_ids_goes_to_the_assistant(
    loom: LoomServer, database_url: str
) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="both")
    thread_id = create_thread(client, assistant_id)
    r = ingest(client, [("x.txt", b"both ids")], assistant_id=assistant_id, thread_id=thread_id)
    assert r.status_code == 200, r.text
    assert count(database_url, f"assistant:{assistant_id}") == 1
    assert count(database_url, f"thread:{thread_id}") == 0


def test_foreign_and_unknown_targets_are_404(
    loom: LoomServer, database_url: str, alice_assistant: str
) -> None:
    alice = loom.client("alice")
    bob = loom.client("bob")
    thread_id = create_thread(alice, alice_assistant)
    before = count(database_url)
    answers = [
        ingest(bob, [("x.txt", b"intrusion")], assistant_id=alice_assistant),
        ingest(bob, [("x.txt", b"intrusion")], thread_id=thread_id),
        ingest(alice, [("x.txt", b"nope")], assistant_id=str(uuid.uuid4())),
        ingest(alice, [("x.txt", b"nope")], thread_id="not-a-uuid"),
    ]
    assert [r.status_code for r in answers] == [404, 404, 404, 404]
    assert answers[0].json() == {"detail": "Assistant not found"}
    assert answers[1].json() == {"detail": "Thread not found"}
    # bob's own thread does not let him reach alice's assistant
    bob_thread = create_thread(bob, create_assistant(bob, CHATBOT))
    r = ingest(bob, [("x.txt", b"x")], assistant_id=alice_assistant, thread_id=bob_thread)
    assert r.status_code == 404
    assert count(database_url) == before


def test_bad_requests(loom: LoomServer, alice_assistant: str) -> None:
    client = loom.client("alice")
    assert loom.client(None).post("/ingest", files=[("files", ("a.txt", b"x"))]).status_code == 401
    r = client.post("/ingest", json={"config": {}})
    assert r.status_code == 415
    r = client.post("/ingest", files=[("files", ("a.txt", b"x"))])
    assert r.status_code == 422 and "config" in r.json()["detail"][0]["msg"]
    r = client.post("/ingest", files=[("files", ("a.txt", b"x"))], data={"config": "{oops"})
    assert r.status_code == 422
    r = client.post(
        "/ingest", files=[("files", ("a.txt", b"x"))], data={"config": '{"configurable": {}}'}
    )
    assert r.status_code == 422 and "assistant_id" in r.json()["detail"][0]["msg"]
    config = json.dumps({"configurable": {"assistant_id": alice_assistant}})
    r = client.post("/ingest", data={"config": config}, files=[("other", ("", b""))])
    assert r.status_code in (400, 422)


@pytest.mark.parametrize(
    ("bad", "status", "says"),
    [
        (("fake.pdf", b"this is no pdf"), 415, "fake.pdf: the content is not a PDF"),
        (("fake.docx", b"not a zip file"), 415, "fake.docx: the content is not a DOCX"),
        (("junk.txt", bytes(range(256)) * 8), 415, "junk.txt: the content is not valid UTF-8"),
        (("broken.pdf", b"%PDF-1.7\n1 0 obj garbage"), 422, "broken.pdf: could not read"),
        (("empty.txt", b"   "), 422, "empty.txt: the file contains no text"),
    ],
)
def test_bad_file_stores_nothing(
    loom: LoomServer,
    database_url: str,
    bad: tuple[str, bytes],
    status: int,
    says: str,
) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="bad")
    good = ("good.txt", b"A perfectly fine document about herons.")
    r = ingest(client, [good, bad], assistant_id=assistant_id)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert says in (detail[0]["msg"] if status == 422 else detail)
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_every_bad_file_is_named(loom: LoomServer, database_url: str) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="bad2")
    r = ingest(
        client,
        [("a.pdf", b"nope"), ("ok.txt", b"fine"), ("b.docx", b"nope")],
        assistant_id=assistant_id,
    )
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert "a.pdf:" in detail and "b.docx:" in detail and "ok.txt" not in detail
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_embedding_failure_stores_nothing(
    loom: LoomServer, database_url: str, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="emb-fail")
    first = ("first.txt", LONG_TEXT.encode() * 20)  # several embedding batches
    fake_llm.fail(400, endpoint="embeddings")  # not retried: one batch fails
    r = ingest(client, [first], assistant_id=assistant_id)
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The embeddings provider answered with HTTP 400"}
    assert len(fake_llm.embedding_requests) >= 1  # batches run concurrently: others may not start
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_async_job(loom: LoomServer, database_url: str, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="job")
    big = ("big.txt", (LONG_TEXT + "\n\n") * 70)  # > 256 chunks: several embedding windows
    r = ingest(
        client,
        [(big[0], big[1].encode()), ("small.md", b"# Small\n\ntext")],
        assistant_id=assistant_id,
        params={"async": "true"},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/ingest/{job['job_id']}"
    assert job["status"] == "pending"
    assert job["namespace"] == f"assistant:{assistant_id}"
    assert job["files_total"] == 2 and job["files_done"] == 0 and job["error"] is None

    done = wait_job(client, job["job_id"])
    assert done["status"] == "done", done
    assert done["files_done"] == 2
    assert done["chunks_total"] == done["chunks_done"] > 256
    assert [(f["filename"], f["chunks"]) for f in done["files"]] == [
        ("big.txt", done["chunks_total"] - 1),
        ("small.md", 1),
    ]
    assert count(database_url, f"assistant:{assistant_id}") == done["chunks_total"]
    # batches of 64 texts
    assert max(len(req["input"]) for req in fake_llm.embedding_requests) == 64

    # only its owner can read it
    assert loom.client("bob").get(f"/ingest/{job['job_id']}").status_code == 404
    assert client.get(f"/ingest/{uuid.uuid4()}").status_code == 404
    assert client.get("/ingest/nope").status_code == 404


def test_async_job_failure(loom: LoomServer, database_url: str) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="job-fail")
    # type problems are still answered synchronously
    r = ingest(client, [("x.pdf", b"no")], assistant_id=assistant_id, params={"async": "true"})
    assert r.status_code == 415
    # a file that fails to parse fails the job, and nothing is stored
    r = ingest(
        client,
        [("ok.txt", b"fine text"), ("broken.pdf", b"%PDF-1.4 garbage")],
        assistant_id=assistant_id,
        params={"async": "true"},
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "error"
    assert job["error"].startswith("broken.pdf: could not read the file as a PDF")
    assert job["files"] is None
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_stale_job_is_reported_failed(loom: LoomServer, database_url: str) -> None:
    job_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ingest_job (job_id, user_id, namespace, status, files_total, updated_at)"
            " VALUES (%s, 'alice', 'assistant:x', 'running', 1, now() - interval '5 minutes')",
            (job_id,),
        )
    job = loom.client("alice").get(f"/ingest/{job_id}").json()
    assert job["status"] == "error"
    assert job["error"] == STALE_MESSAGE


def test_delete_assistant_and_thread_removes_documents(loom: LoomServer, database_url: str) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT, name="to-delete")
    thread_id = create_thread(client, assistant_id)
    keep_id = create_assistant(client, CHATBOT, name="keep")
    assert ingest(client, [("a.txt", b"assistant doc")], assistant_id=assistant_id).ok
    assert ingest(client, [("t.txt", b"thread doc")], thread_id=thread_id).ok
    assert ingest(client, [("k.txt", b"kept doc")], assistant_id=keep_id).ok
    assert count(database_url, f"thread:{thread_id}") == 1

    assert client.delete(f"/threads/{thread_id}").status_code in (200, 204)
    assert count(database_url, f"thread:{thread_id}") == 0
    assert count(database_url, f"assistant:{assistant_id}") == 1

    assert client.delete(f"/assistants/{assistant_id}").status_code in (200, 204)
    assert count(database_url, f"assistant:{assistant_id}") == 0
    assert count(database_url, f"assistant:{keep_id}") == 1
