"""The ``agent`` type's prompt: tool calls left without a result are answered in the prompt."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from loom.agents.types.agent import CANCELLED_CALL, close_dangling_calls


def _ai(*call_ids: str, invalid: tuple[str, ...] = ()) -> AIMessage:
    return AIMessage(
        content="",
        id=f"ai-{'-'.join(call_ids + invalid)}",
        tool_calls=[{"id": c, "name": f"tool_{c}", "args": {}} for c in call_ids],
        invalid_tool_calls=[
            {"id": c, "name": f"tool_{c}", "args": "{not json", "error": None} for c in invalid
        ],
    )


def _tool(call_id: str) -> ToolMessage:
    return ToolMessage(content=f"result {call_id}", tool_call_id=call_id, id=f"tool-{call_id}")


def _shape(messages: list[BaseMessage]) -> list[tuple[str, str | None]]:
    return [(m.type, m.tool_call_id if isinstance(m, ToolMessage) else m.id) for m in messages]


def test_a_conversation_without_tool_calls_is_unchanged() -> None:
    messages: list[BaseMessage] = [
        HumanMessage(content="hi", id="h1"),
        AIMessage(content="hello", id="a1"),
        HumanMessage(content="bye", id="h2"),
    ]
    prompt = close_dangling_calls(messages)
    assert prompt == messages
    assert prompt is not messages


def test_answered_calls_are_unchanged() -> None:
    messages: list[BaseMessage] = [
        HumanMessage(content="fetch", id="h1"),
        _ai("a", "b"),
        _tool("b"),
        _tool("a"),
        AIMessage(content="done", id="a2"),
        HumanMessage(content="thanks", id="h2"),
    ]
    assert close_dangling_calls(messages) == messages


def test_calls_on_the_last_message_are_pending_not_dangling() -> None:
    messages: list[BaseMessage] = [HumanMessage(content="fetch", id="h1"), _ai("a", "b")]
    assert close_dangling_calls(messages) == messages


def test_a_call_left_out_of_a_partial_answer_is_closed() -> None:
    # A client answered (e.g. rejected) one of two pending calls and continued the run: the
    # model is called next, so the other call is answered in the prompt.
    messages: list[BaseMessage] = [
        HumanMessage(content="fetch", id="h1"),
        _ai("a", "b"),
        _tool("a"),
    ]
    assert _shape(close_dangling_calls(messages)) == [
        ("human", "h1"),
        ("ai", "ai-a-b"),
        ("tool", "b"),
        ("tool", "a"),
    ]


def test_dangling_calls_get_error_results_right_after_their_message() -> None:
    ai = _ai("a", "b")
    messages: list[BaseMessage] = [
        HumanMessage(content="fetch", id="h1"),
        ai,
        HumanMessage(content="never mind, just say hi", id="h2"),
    ]
    before = [m.model_copy(deep=True) for m in messages]
    prompt = close_dangling_calls(messages)
    assert _shape(prompt) == [
        ("human", "h1"),
        ("ai", ai.id),
        ("tool", "a"),
        ("tool", "b"),
        ("human", "h2"),
    ]
    for synthetic, call in zip(prompt[2:4], ai.tool_calls, strict=True):
        assert isinstance(synthetic, ToolMessage)
        assert synthetic.content == CANCELLED_CALL
        assert synthetic.status == "error"
        assert synthetic.name == call["name"]
        assert synthetic.id
    # the prompt only: the caller's list and messages are untouched
    assert messages == before
    assert len(messages) == 3


def test_only_the_unanswered_calls_of_a_message_are_closed() -> None:
    messages: list[BaseMessage] = [
        HumanMessage(content="fetch", id="h1"),
        _ai("a", "b"),
        _tool("a"),
        HumanMessage(content="next", id="h2"),
    ]
    assert _shape(close_dangling_calls(messages)) == [
        ("human", "h1"),
        ("ai", "ai-a-b"),
        ("tool", "b"),
        ("tool", "a"),
        ("human", "h2"),
    ]


def test_invalid_calls_and_several_messages() -> None:
    messages: list[BaseMessage] = [
        HumanMessage(content="one", id="h1"),
        _ai("a", invalid=("x",)),
        HumanMessage(content="two", id="h2"),
        _ai("c"),
        _tool("c"),
        AIMessage(content="answered", id="a3"),
        HumanMessage(content="three", id="h3"),
        _ai("d"),
        HumanMessage(content="four", id="h4"),
    ]
    prompt = close_dangling_calls(messages)
    assert _shape(prompt) == [
        ("human", "h1"),
        ("ai", "ai-a-x"),
        ("tool", "a"),
        ("tool", "x"),
        ("human", "h2"),
        ("ai", "ai-c"),
        ("tool", "c"),
        ("ai", "a3"),
        ("human", "h3"),
        ("ai", "ai-d"),
        ("tool", "d"),
        ("human", "h4"),
    ]
    assert [m.name for m in prompt if isinstance(m, ToolMessage) and m.status == "error"] == [
        "tool_a",
        "tool_x",
        "tool_d",
    ]


def test_empty() -> None:
    assert close_dangling_calls([]) == []
