"""The server pieces the chat UI builds on: a thread's active run, branches (regenerate, edit,
switch back, kept across reads), message times, files per thread and assistant, retrieved
passages as citations, and thread search over titles and message text."""

from __future__ import annotations

from typing import Any

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, ToolCall
from tests.retrieval.helpers import ingest
from tests.runs.helpers import (
    CHATBOT,
    create_assistant,
    create_thread,
    messages,
    new_thread,
    run_body,
    wait_run,
)
from tests.runs.sse_client import check_shape, read_stream, stream_run


def _texts(client: Any, thread_id: str) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in messages(client, thread_id)]


def _fork(client: Any, thread_id: str, checkpoint_id: str, text: str | None) -> None:
    body: dict[str, Any] = {
        "thread_id": thread_id,
        "input": {"messages": [{"type": "human", "content": text}]} if text else None,
        "config": {"configurable": {"checkpoint_id": checkpoint_id}},
    }
    stream = stream_run(client, body)
    check_shape(stream)
    assert stream.errors == []


def test_a_thread_lists_its_active_run_and_a_page_can_rejoin_it(
    loom: LoomServer, fake_llm: FakeOpenAI
) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)

    def active() -> list[str]:
        r = client.get(f"/threads/{thread_id}/runs", params={"status": ["pending", "running"]})
        assert r.status_code == 200, r.text
        return [run["run_id"] for run in r.json()]

    assert active() == []
    text = "one two three four five six seven eight nine ten"
    fake_llm.reply(text=text, token_delay=0.05)
    run = client.post("/runs", json=run_body(thread_id, "go")).json()
    assert active() == [run["run_id"]]
    # A page that saw events up to some id reconnects after it and gets the rest only.
    first = read_stream(client.get(f"/runs/{run['run_id']}/stream", params={"format": "compact"}))
    check_shape(first)
    ids = [e.id for e in first.events if e.event == "data"]
    rest = read_stream(
        client.get(
            f"/runs/{run['run_id']}/stream",
            params={"format": "compact"},
            headers={"Last-Event-ID": str(ids[1])},
        )
    )
    assert [e.id for e in rest.events if e.event == "data"] == ids[2:]
    wait_run(client, run["run_id"])
    assert active() == []
    [done] = client.get(f"/threads/{thread_id}/runs").json()
    assert (done["run_id"], done["status"]) == (run["run_id"], "success")
    assert loom.client("bob").get(f"/threads/{thread_id}/runs").status_code == 404
    assert client.get(f"/threads/{thread_id}/runs", params={"status": "nope"}).status_code == 422


def test_regenerate_edit_and_switch_branches(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    _, thread_id = new_thread(client)
    fake_llm.reply(text="A1")
    stream_run(client, run_body(thread_id, "a"))
    fake_llm.reply(text="B1")
    stream_run(client, run_body(thread_id, "b"))
    tree = client.get(f"/threads/{thread_id}/branches").json()
    assert [m["id"] for m in tree["messages"]] == [m["id"] for m in messages(client, thread_id)]
    assert all(m["created_at"] and m["fork_from"] for m in tree["messages"])
    assert not any("siblings" in m for m in tree["messages"])
    times = [m["created_at"] for m in tree["messages"]]
    assert times == sorted(times)

    # Regenerate the last answer: a run from the checkpoint before it, input null.
    fake_llm.reply(text="B2")
    _fork(client, thread_id, tree["messages"][3]["fork_from"], None)
    assert _texts(client, thread_id) == [("human", "a"), ("ai", "A1"), ("human", "b"), ("ai", "B2")]
    tree = client.get(f"/threads/{thread_id}/branches").json()
    b1, b2 = tree["messages"][3]["siblings"]
    assert b2["message_id"] == tree["messages"][3]["id"]
    assert "siblings" not in tree["messages"][2]

    # Edit the first message: a run from the checkpoint before it with the new text.
    fake_llm.reply(text="X1")
    _fork(client, thread_id, tree["messages"][0]["fork_from"], "x")
    assert _texts(client, thread_id) == [("human", "x"), ("ai", "X1")]
    tree = client.get(f"/threads/{thread_id}/branches").json()
    old_a, new_x = tree["messages"][0]["siblings"]
    assert new_x["message_id"] == tree["messages"][0]["id"]

    # Back to the first branch: it is the thread's head for every later read and run.
    switched = client.post(f"/threads/{thread_id}/branches", json=old_a)
    assert switched.status_code == 200, switched.text
    expected = [("human", "a"), ("ai", "A1"), ("human", "b"), ("ai", "B2")]
    assert [(m["type"], m["content"]) for m in switched.json()["values"]] == expected
    assert _texts(client, thread_id) == expected
    tree = client.get(f"/threads/{thread_id}/branches").json()
    # Still the first of two versions, written when it was (a switch changes no time).
    versions = tree["messages"][0]["siblings"]
    assert [v["message_id"] for v in versions] == [old_a["message_id"], new_x["message_id"]]
    assert tree["messages"][0]["id"] == old_a["message_id"]
    created = [m["created_at"] for m in tree["messages"]]
    assert created == [*times[:3], tree["messages"][3]["created_at"]]
    assert len(tree["messages"][3]["siblings"]) == 2
    # ... and to the older answer of the second question.
    switched = client.post(f"/threads/{thread_id}/branches", json=b1)
    assert [m["content"] for m in switched.json()["values"]] == ["a", "A1", "b", "B1"]
    fake_llm.reply(text="C1")
    stream_run(client, run_body(thread_id, "c"))
    assert [c for _, c in _texts(client, thread_id)] == ["a", "A1", "b", "B1", "c", "C1"]

    # An unknown checkpoint of an existing thread conflicts with its history (409: the thread
    # is there); other users' threads are not found.
    missing = {"checkpoint_id": "1f000000-0000-6000-8000-000000000000"}
    unknown = client.post(f"/threads/{thread_id}/branches", json=missing)
    assert unknown.status_code == 409, unknown.text
    assert unknown.json() == {"detail": "This thread has no checkpoint with that id"}
    nul = client.post(f"/threads/{thread_id}/branches", json={"checkpoint_id": "a\u0000b"})
    assert nul.status_code == 422, nul.text
    bob = loom.client("bob")
    assert bob.get(f"/threads/{thread_id}/branches").status_code == 404
    assert bob.post(f"/threads/{thread_id}/branches", json=old_a).status_code == 404


def test_files_of_threads_and_assistants(loom: LoomServer) -> None:
    client = loom.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    thread_id = create_thread(client, assistant_id)
    assert client.get(f"/threads/{thread_id}/files").json() == []
    files = [("notes.txt", b"Some notes about otters."), ("plan.md", b"# Plan\nSwim.")]
    assert ingest(client, files, thread_id=thread_id).ok
    assert ingest(client, [("guide.txt", b"A guide to rivers.")], assistant_id=assistant_id).ok
    listed = client.get(f"/threads/{thread_id}/files").json()
    assert [(f["filename"], f["chunks"]) for f in listed] == [("notes.txt", 1), ("plan.md", 1)]
    assert listed[0]["content_type"] == "text/plain" and listed[0]["created_at"]
    listed = client.get(f"/assistants/{assistant_id}/files").json()
    assert [f["filename"] for f in listed] == ["guide.txt"]

    assert client.delete(f"/threads/{thread_id}/files/notes.txt").json()["chunks"] == 1
    assert [f["filename"] for f in client.get(f"/threads/{thread_id}/files").json()] == ["plan.md"]
    assert client.delete(f"/threads/{thread_id}/files/notes.txt").status_code == 404
    bob = loom.client("bob")
    assert bob.get(f"/threads/{thread_id}/files").status_code == 404
    assert bob.delete(f"/assistants/{assistant_id}/files/guide.txt").status_code == 404
    assert client.delete(f"/assistants/{assistant_id}/files/guide.txt").status_code == 200
    assert client.get(f"/assistants/{assistant_id}/files").json() == []


def test_retrieved_passages_are_kept_for_citations(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("alice")
    config = {"configurable": {"type": "agent", "tools": [{"type": "retrieval"}]}}
    assistant_id = create_assistant(client, config)
    thread_id = create_thread(client, assistant_id)
    doc = "The lighthouse keeper's cat is called Biscuit."
    assert ingest(client, [("keeper.txt", doc.encode())], thread_id=thread_id).ok
    fake_llm.reply(tool_calls=[ToolCall(name="retrieval", args={"query": "cat name"})])
    fake_llm.reply(text="The cat is called Biscuit.")
    stream_run(client, run_body(thread_id, "What is the cat called?"))
    [tool] = [m for m in messages(client, thread_id) if m["type"] == "tool"]
    [passage] = tool["artifact"]
    assert (passage["filename"], passage["text"]) == ("keeper.txt", doc)

    rag = create_assistant(client, {"configurable": {"type": "chat_retrieval"}})
    rag_thread = create_thread(client, rag)
    assert ingest(client, [("keeper.txt", doc.encode())], thread_id=rag_thread).ok
    fake_llm.reply(text="Biscuit.")
    stream_run(client, run_body(rag_thread, "The cat's name?"))
    [tool] = [m for m in messages(client, rag_thread) if m["type"] == "tool"]
    assert [(p["filename"], p["text"]) for p in tool["artifact"]] == [("keeper.txt", doc)]


def test_search_threads_by_title_and_message_words(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("carol")
    assistant_id = create_assistant(client, CHATBOT)
    boats = create_thread(client, assistant_id, name="Boats")
    trains = create_thread(client, assistant_id, name="Trains")
    fake_llm.reply(text="Catamarans have two hulls.")
    stream_run(client, run_body(boats, "Tell me about sailing"))
    fake_llm.reply(text="Steam locomotives burn coal.")
    stream_run(client, run_body(trains, "Tell me about railways"))

    def found(q: str, who: Any = client) -> list[str]:
        r = who.get("/threads", params={"q": q})
        assert r.status_code == 200, r.text
        return [t["thread_id"] for t in r.json()]

    assert found("sailing") == [boats]  # a word of a human message
    assert found("catamaran") == [boats]  # the start of a word of a reply
    assert found("LOCOMOTIVES coal") == [trains]  # every word, any case
    assert found("rain") == [trains]  # part of the title
    assert sorted(found("tell about")) == sorted([boats, trains])
    assert found("submarine") == []
    assert found("  ") == found("")  # no query: every thread
    # New messages are found on the next search.
    fake_llm.reply(text="Monorails run on one rail.")
    stream_run(client, run_body(boats, "And monorails?"))
    assert found("monorail") == [boats]
    # Another user's threads never match.
    assert found("sailing", loom.client("dave")) == []
