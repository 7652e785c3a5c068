"""Files, vector stores and ``file_search`` through the official SDK: an uploaded file is
searched through Loom's pgvector retrieval and the answer cites it (``file_citation``)."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI, ToolCall

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FACTS = (
    b"The Jacquard loom was invented by Joseph Marie Jacquard in 1804.\n\n"
    b"It used punched cards to control the pattern woven into the cloth.\n"
)
ANSWER = "Joseph Marie Jacquard built it in 1804 【0†loom-facts.txt】."


def _upload(client: openai.OpenAI, name: str = "loom-facts.txt", data: bytes = FACTS) -> str:
    uploaded = client.files.create(file=(name, data), purpose="assistants")
    assert uploaded.filename == name and uploaded.bytes == len(data)
    assert uploaded.purpose == "assistants"
    return uploaded.id


def _ask(client: openai.OpenAI, fake_llm: FakeOpenAI, assistant_id: str, thread_id: str) -> str:
    """Run the fake model through a search and an answer that cites; the search's output."""
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "Jacquard loom"}, id="call_fs")])
    answer = fake_llm.reply(text=ANSWER)
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as s:
        assert "".join(s.text_deltas) == ANSWER
        [message] = s.get_final_messages()
        run = s.get_final_run()
    assert run.status == "completed"
    [annotation] = message.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.type == "file_citation"
    assert annotation.text == "【0†loom-facts.txt】"
    assert ANSWER[annotation.start_index : annotation.end_index] == annotation.text
    [request] = answer.requests
    tool_output = request["messages"][-1]
    assert tool_output["role"] == "tool" and "1804" in tool_output["content"]
    return annotation.file_citation.file_id  # type: ignore[union-attr, no-any-return]


def test_file_search_with_a_vector_store(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    file_id = _upload(client)
    assert client.files.retrieve(file_id).filename == "loom-facts.txt"
    assert client.files.content(file_id).read() == FACTS
    assert file_id in [f.id for f in client.files.list(purpose="assistants").data]

    store = client.vector_stores.create(name="facts", file_ids=[file_id])
    assert store.name == "facts" and store.status == "completed"
    assert (store.file_counts.completed, store.file_counts.total) == (1, 1)
    [attached] = client.vector_stores.files.list(store.id).data
    assert (attached.id, attached.status) == (file_id, "completed")
    assert client.vector_stores.retrieve(store.id).usage_bytes == len(FACTS)

    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        instructions="Answer from the files.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    assert [t.type for t in assistant.tools] == ["file_search"]
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    assert assistant.tool_resources.file_search.vector_store_ids == [store.id]

    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Who invented the Jacquard loom, and when?"}]
    )
    assert _ask(client, fake_llm, assistant.id, thread.id) == file_id

    # The thread's message list carries the same citation; the step shows the search.
    last = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    [annotation] = last.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.file_citation.file_id == file_id  # type: ignore[union-attr]
    [run] = client.beta.threads.runs.list(thread.id).data
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    [search] = steps[0].step_details.tool_calls  # type: ignore[union-attr]
    assert search.type == "file_search"
    results = search.file_search.results  # type: ignore[union-attr]
    assert results and {r.file_id for r in results} == {file_id}
    assert results[0].file_name == "loom-facts.txt"

    # Removing the file from the store: the next search finds nothing.
    client.vector_stores.files.delete(file_id, vector_store_id=store.id)
    assert client.vector_stores.files.list(store.id).data == []
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "Jacquard"}, id="call_2")])
    after = fake_llm.reply(text="Nothing found.")
    client.beta.threads.messages.create(thread.id, role="user", content="And again?")
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    [request] = after.requests
    assert "No passages" in request["messages"][-1]["content"]

    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_file_search_with_a_message_attachment(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    file_id = _upload(client)
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="Who invented the Jacquard loom?",
        attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}],
    )
    assert message.attachments is not None
    assert [a.file_id for a in message.attachments] == [file_id]
    assert _ask(client, fake_llm, assistant.id, thread.id) == file_id

    # Deleting the file removes its passages from the thread too.
    assert client.files.delete(file_id).deleted
    fake_llm.reply(tool_calls=[ToolCall("retrieval", {"query": "Jacquard"}, id="call_3")])
    after = fake_llm.reply(text="Gone.")
    client.beta.threads.messages.create(thread.id, role="user", content="Again?")
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    [request] = after.requests
    assert "No passages" in request["messages"][-1]["content"]


def test_unsupported_files_and_tools(client: openai.OpenAI) -> None:
    binary = _upload(client, "blob.bin", b"\x00\x01\x02 not text")
    store = client.vector_stores.create(file_ids=[binary])
    assert (store.file_counts.failed, store.file_counts.total) == (1, 1)
    [failed] = client.vector_stores.files.list(store.id, filter="failed").data
    assert failed.last_error is not None and failed.last_error.code == "unsupported_file"

    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "code_interpreter"}])
    assert "code_interpreter is not supported" in refused.value.message
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(
            model="gpt-4o-mini",
            tool_resources={"file_search": {"vector_store_ids": ["vs_" + "0" * 32]}},
        )


def test_vector_store_files_and_batches(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="empty", metadata={"team": "a"})
    assert store.file_counts.total == 0 and store.metadata == {"team": "a"}
    renamed = client.vector_stores.update(store.id, name="docs")
    assert (renamed.name, renamed.metadata) == ("docs", {"team": "a"})
    assert store.id in [s.id for s in client.vector_stores.list().data]

    one = _upload(client, "one.md", b"# One\n\nThe first document.\n")
    added = client.vector_stores.files.create_and_poll(file_id=one, vector_store_id=store.id)
    assert (added.id, added.status, added.vector_store_id) == (one, "completed", store.id)
    got = client.vector_stores.files.retrieve(one, vector_store_id=store.id)
    assert got.usage_bytes == len(b"# One\n\nThe first document.\n")

    # The SDK's batch helper: uploads the files, makes a batch, polls it.
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id,
        files=[("two.txt", b"The second document."), ("three.txt", b"The third one.")],
    )
    assert batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (2, 2)
    in_batch = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(in_batch.data) == 2
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id) == batch
    # Files are ingested as the batch is made: cancelling a finished batch changes nothing.
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert (cancelled.id, cancelled.status) == (batch.id, "completed")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.cancel("vsfb_" + "0" * 24, vector_store_id=store.id)
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 3
    names = {client.files.retrieve(f.id).filename for f in in_batch.data}
    assert names == {"two.txt", "three.txt"}
