"""Retrieval inside runs: the ``retrieval`` tool and the ``chat_retrieval`` graph see exactly the
run's assistant and thread documents, and what they find reaches the model's prompt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI, ToolCall
from tests.runs.helpers import RAGBOT, create_assistant, create_thread, run_body
from tests.runs.sse_client import check_shape, stream_run

from .helpers import ingest

AGENT = {"configurable": {"type": "agent", "tools": [{"type": "retrieval"}]}}

ALICE_DOC = "Alice's notes: the zebra migration starts in the Serengeti in July."
BOB_DOC = "Bob's notes: the zebra migration starts in the Masai Mara in August."
ALICE_THREAD_DOC = "Thread note: zebras drink from the Mara river during the migration."
FILLER = [f"Unrelated memo {i} about quarterly budgets and office chairs." for i in range(8)]


def _prompt_text(request: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in request["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def bob_docs(loom: LoomServer) -> tuple[str, str]:
    """Bob's agent and RAG assistants, with a document close to Alice's question."""
    bob = loom.client("bob")
    agent = create_assistant(bob, AGENT, name="bob-agent")
    rag = create_assistant(bob, RAGBOT, name="bob-rag")
    for assistant_id in (agent, rag):
        assert ingest(bob, [("bob.txt", BOB_DOC.encode())], assistant_id=assistant_id).ok
    bob_thread = create_thread(bob, agent)
    assert ingest(bob, [("bob-thread.txt", BOB_DOC.encode())], thread_id=bob_thread).ok
    return agent, rag


def test_agent_retrieval_tool(loom: LoomServer, fake_llm: FakeOpenAI, bob_docs: object) -> None:
    alice = loom.client("alice")
    assistant_id = create_assistant(alice, AGENT, name="alice-agent")
    files = [("alice.txt", ALICE_DOC.encode())] + [
        (f"memo{i}.txt", text.encode()) for i, text in enumerate(FILLER)
    ]
    assert ingest(alice, files, assistant_id=assistant_id).ok
    thread_id = create_thread(alice, assistant_id)
    assert ingest(alice, [("trip.md", ALICE_THREAD_DOC.encode())], thread_id=thread_id).ok

    fake_llm.reply(
        text="",
        tool_calls=[
            ToolCall(name="retrieval", args={"query": "when does the zebra migration start"})
        ],
    )
    fake_llm.reply(text="In July, in the Serengeti.")
    stream = stream_run(
        alice, run_body(thread_id, "When do the zebras migrate?", assistant_id=assistant_id)
    )
    check_shape(stream)
    assert stream.errors == []
    assert stream.data[-1][-1]["content"] == "In July, in the Serengeti."

    prompt = _prompt_text(fake_llm.chat_requests[-1])
    tool_messages = [m for m in fake_llm.chat_requests[-1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1
    result = tool_messages[0]["content"]
    assert ALICE_DOC in result
    assert ALICE_THREAD_DOC in result  # the thread's documents are searched too
    assert '<document source="alice.txt">' in result
    assert BOB_DOC not in prompt  # never another user's namespace
    assert result.count("<document") == 4  # top-k (LOOM_RETRIEVAL_K = 4)
    # the query was embedded as sent by the model
    assert fake_llm.embedding_requests[-1]["input"] == ["when does the zebra migration start"]


def test_chat_retrieval(loom: LoomServer, fake_llm: FakeOpenAI, bob_docs: object) -> None:
    alice = loom.client("alice")
    assistant_id = create_assistant(alice, RAGBOT, name="alice-rag")
    assert ingest(alice, [("alice.txt", ALICE_DOC.encode())], assistant_id=assistant_id).ok
    thread_id = create_thread(alice, assistant_id)

    fake_llm.reply(text="July.")
    stream = stream_run(alice, run_body(thread_id, "When does the zebra migration start?"))
    check_shape(stream)
    assert stream.errors == []
    assert len(fake_llm.chat_requests) == 1  # first question: no rewrite
    answer_prompt = fake_llm.chat_requests[-1]["messages"]
    assert answer_prompt[0]["role"] == "system"
    assert ALICE_DOC in answer_prompt[0]["content"]
    assert BOB_DOC not in _prompt_text(fake_llm.chat_requests[-1])
    assert fake_llm.embedding_requests[-1]["input"] == ["When does the zebra migration start?"]

    # a follow-up is first rewritten into a standalone query, which is what gets searched
    fake_llm.reply(text="zebra migration location")
    fake_llm.reply(text="The Serengeti.")
    stream = stream_run(alice, run_body(thread_id, "And where?"))
    check_shape(stream)
    assert stream.errors == []
    rewrite, answer = fake_llm.chat_requests[-2:]
    assert "standalone search query" in _prompt_text(rewrite)
    assert "And where?" in _prompt_text(rewrite)
    assert fake_llm.embedding_requests[-1]["input"] == ["zebra migration location"]
    assert ALICE_DOC in answer["messages"][0]["content"]
    assert stream.data[-1][-1]["content"] == "The Serengeti."


def test_public_assistant_documents_with_own_thread(
    loom: LoomServer, fake_llm: FakeOpenAI, bob_docs: tuple[str, str]
) -> None:
    """Running someone's public RAG assistant searches its documents and the caller's thread,
    never the owner's threads."""
    bob = loom.client("bob")
    public = bob.post(
        "/assistants", json={"name": "bob-public", "config": RAGBOT, "public": True}
    ).json()["assistant_id"]
    assert ingest(
        bob, [("public.txt", b"Public fact: zebras have stripes.")], assistant_id=public
    ).ok
    alice = loom.client("alice")
    thread_id = create_thread(alice, public)
    fake_llm.reply(text="Stripes.")
    stream = stream_run(alice, run_body(thread_id, "What do zebras have?", assistant_id=public))
    assert stream.errors == []
    prompt = _prompt_text(fake_llm.chat_requests[-1])
    assert "Public fact: zebras have stripes." in prompt
    assert BOB_DOC not in prompt


def test_no_documents_means_no_embedding_call(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    alice = loom.client("alice")
    assistant_id = create_assistant(alice, RAGBOT, name="empty-rag")
    thread_id = create_thread(alice, assistant_id)
    fake_llm.reply(text="I do not know.")
    stream = stream_run(alice, run_body(thread_id, "Anything?"))
    assert stream.errors == []
    assert fake_llm.embedding_requests == []
    assert "No documents found." in fake_llm.chat_requests[-1]["messages"][0]["content"]
