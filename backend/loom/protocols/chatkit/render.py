"""LangGraph messages as ChatKit thread items: one mapping, used by the live stream and by
``items.list`` alike, so a reply looks the same streamed and reloaded.

* a human message is a ``user_message`` item with the message's id;
* an AI message's text is an ``assistant_message`` item with the message's id;
* an AI message's tool calls are a ``workflow`` item ``wf_<message id>``: one task per call,
  with its result once the tool message answering it is in the thread;
* tool calls paused for approval (``interrupt_before_action``) are also a ``widget`` item
  ``approval_<message id>`` with Approve and Reject buttons (``threads.custom_action`` with
  action ``loom.approve`` / ``loom.reject``, payload ``{"message_id": <message id>}``);
* tool and system messages have no item of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomSummary,
    CustomTask,
    InferenceOptions,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import DynamicWidgetRoot

Message = Mapping[str, Any]
ApprovalStatus = Literal["pending", "approved", "rejected", "skipped"]

APPROVE = "loom.approve"
REJECT = "loom.reject"
REJECTED_RESULT = "The user rejected this tool call."
RESULT_CHARS = 2000


def workflow_id(message_id: str) -> str:
    return f"wf_{message_id}"


def approval_id(message_id: str) -> str:
    return f"approval_{message_id}"


def backing_message(kind: str, item_id: str) -> str | None:
    """The id of the message an item of this kind and id shows (``None``: no message)."""
    if kind in ("user_message", "assistant_message"):
        return item_id
    if kind == "workflow" and item_id.startswith("wf_"):
        return item_id[3:]
    if kind == "widget" and item_id.startswith("approval_"):
        return item_id[len("approval_") :]
    return None


def text_of(content: Any) -> str:
    """The text of a message's content (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return ""


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    args: str


def calls_of(message: Message) -> list[Call]:
    out: list[Call] = []
    for call in message.get("tool_calls") or []:
        if call.get("id"):
            args = json.dumps(call.get("args") or {}, ensure_ascii=False, sort_keys=True)
            out.append(Call(str(call["id"]), str(call.get("name") or "tool"), args))
    for call in message.get("invalid_tool_calls") or []:
        if call.get("id"):
            out.append(
                Call(str(call["id"]), str(call.get("name") or "tool"), call.get("args") or "")
            )
    return out


def user_text(item: UserMessageItem) -> str:
    """What a ChatKit user message says to the model (and how the thread stores it)."""
    parts: list[str] = []
    if item.quoted_text:
        parts.append("\n".join(f"> {line}" for line in item.quoted_text.splitlines()))
    words = []
    for content in item.content:
        if isinstance(content, UserMessageTextContent):
            words.append(content.text)
        elif isinstance(content, UserMessageTagContent):
            words.append(f"@{content.text}")
    parts.append("".join(words))
    if item.attachments:
        names = ", ".join(a.name for a in item.attachments)
        parts.append(f"[Attached files: {names}]")
    return "\n\n".join(p for p in parts if p)


def user_item(
    message: Message, thread_id: str, created_at: datetime, stored: UserMessageItem | None
) -> UserMessageItem:
    text = text_of(message.get("content"))
    if stored is not None and user_text(stored) == text:
        return stored
    return UserMessageItem(
        id=str(message["id"]),
        thread_id=thread_id,
        created_at=stored.created_at if stored else created_at,
        content=[UserMessageTextContent(text=text)],
        attachments=stored.attachments if stored else [],
        inference_options=stored.inference_options if stored else InferenceOptions(),
    )


def assistant_item(
    message_id: str, text: str, thread_id: str, created_at: datetime
) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=message_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )


def _task(call: Call, result: Message | None, awaiting: bool) -> CustomTask:
    content = f"Input: {call.args}"
    if result is not None:
        output = text_of(result.get("content"))
        if len(output) > RESULT_CHARS:
            output = output[:RESULT_CHARS] + "…"
        content += f"\n\nResult: {output}"
    indicator: Literal["none", "loading", "complete"] = (
        "complete" if result is not None else "none" if awaiting else "loading"
    )
    return CustomTask(title=call.name, content=content, status_indicator=indicator)


def workflow_item(
    ai: Message,
    results: Mapping[str, Message],
    thread_id: str,
    created_at: datetime,
    awaiting: bool = False,
) -> WorkflowItem:
    """The tool calls of one AI message with the results found so far."""
    calls = calls_of(ai)
    tasks = [_task(c, results.get(c.id), awaiting) for c in calls]
    names = ", ".join(dict.fromkeys(c.name for c in calls))
    summary: CustomSummary | None = None
    if calls and all(c.id in results for c in calls):
        summary = CustomSummary(title=f"Used {names}")
    elif awaiting:
        summary = CustomSummary(title=f"Waiting for approval: {names}")
    return WorkflowItem(
        id=workflow_id(str(ai["id"])),
        thread_id=thread_id,
        created_at=created_at,
        workflow=Workflow(type="custom", tasks=tasks, summary=summary, expanded=awaiting),
    )


def approval_status(ai: Message, results: Mapping[str, Message], pending: bool) -> ApprovalStatus:
    if pending:
        return "pending"
    calls = calls_of(ai)
    answers = [results.get(c.id) for c in calls]
    if not calls or any(a is None for a in answers):
        return "skipped"
    if all(text_of(a.get("content")) == REJECTED_RESULT for a in answers if a is not None):
        return "rejected"
    return "approved"


_HEADLINES: dict[ApprovalStatus, str] = {
    "pending": "Approve these tool calls?",
    "approved": "Approved",
    "rejected": "Rejected",
    "skipped": "Not approved (the conversation went on)",
}


def approval_item(
    ai: Message, status: ApprovalStatus, thread_id: str, created_at: datetime
) -> WidgetItem:
    """The approval card of the paused tool calls of ``ai`` (buttons only while pending)."""
    message_id = str(ai["id"])
    calls = calls_of(ai)
    children: list[dict[str, Any]] = [
        {"type": "Text", "value": _HEADLINES[status], "weight": "semibold"},
        *({"type": "Text", "value": f"{c.name} {c.args}", "size": "sm"} for c in calls),
    ]
    if status == "pending":
        payload = {"message_id": message_id}
        children.append(
            {
                "type": "Row",
                "gap": 2,
                "children": [
                    {
                        "type": "Button",
                        "label": "Approve",
                        "style": "primary",
                        "onClickAction": {"type": APPROVE, "payload": payload},
                    },
                    {
                        "type": "Button",
                        "label": "Reject",
                        "style": "secondary",
                        "onClickAction": {"type": REJECT, "payload": payload},
                    },
                ],
            }
        )
    widget = DynamicWidgetRoot.model_validate({"type": "Card", "children": children})
    copy = _HEADLINES[status] + ": " + ", ".join(c.name for c in calls)
    return WidgetItem(
        id=approval_id(message_id),
        thread_id=thread_id,
        created_at=created_at,
        widget=widget,
        copy_text=copy,
    )


def decision_of(item: WidgetItem) -> ApprovalStatus | None:
    """The decision an approval card shows (``None`` while it asks)."""
    decisions: tuple[ApprovalStatus, ...] = ("approved", "rejected")
    for status in decisions:
        if (item.copy_text or "").startswith(_HEADLINES[status] + ":"):
            return status
    return None


def results_of(messages: Sequence[Message]) -> dict[str, Message]:
    """Tool messages by the id of the call they answer."""
    return {
        str(m["tool_call_id"]): m
        for m in messages
        if m.get("type") == "tool" and m.get("tool_call_id")
    }


def pending_calls(state: Mapping[str, Any]) -> Message | None:
    """The AI message whose tool calls wait for approval, if the thread is paused on one."""
    if list(state.get("next") or []) != ["action"]:
        return None
    messages = messages_of(state)
    for message in reversed(messages):
        if message.get("type") == "ai":
            return message if calls_of(message) else None
    return None


def messages_of(state: Mapping[str, Any]) -> list[Message]:
    values = state.get("values")
    if isinstance(values, Mapping):
        values = values.get("messages")
    return list(values) if isinstance(values, list) else []
