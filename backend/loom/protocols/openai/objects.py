"""Assistants runs and run steps built from Loom's records.

A run's status is its last Loom run's: ``pending`` -> ``queued``, ``running`` ->
``in_progress`` (``cancelling`` once a stop was asked for), ``success`` -> ``completed``,
``error`` -> ``failed``, ``cancelled`` -> ``cancelled``, and ``interrupted`` ->
``requires_action`` when the thread waits for client tool outputs (else ``incomplete``).

Run steps are derived from the messages each Loom run of the chain wrote: an AI message with
text is a ``message_creation`` step, an AI message's tool calls are a ``tool_calls`` step
(``file_search`` for Loom's retrieval tool, ``function`` for the others, with their outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai.types.beta.threads import Run as RunObject
from openai.types.beta.threads.runs import RunStep

from loom.storage.runs import Run

from . import ids
from .convert import FILE_SEARCH_TOOL_ID, arguments, file_search_results, passages_of, text_of
from .store import RunRecord
from .wire import epoch

_STATUS = {
    "pending": "queued",
    "running": "in_progress",
    "success": "completed",
    "error": "failed",
    "cancelled": "cancelled",
}
TERMINAL = frozenset({"completed", "failed", "cancelled", "incomplete", "expired"})
STOPPED = TERMINAL | {"requires_action"}


@dataclass
class Snapshot:
    """Where an Assistants run stands."""

    status: str
    part: Run | None
    pending: list[dict[str, Any]] = field(default_factory=list)  # calls awaiting outputs


def status_of(part: Run | None, record: RunRecord, waiting_for_client: bool) -> str:
    if record.cancelled_at is not None:
        return "cancelled"
    if part is None:
        return "failed"
    if part.status == "interrupted":
        return "requires_action" if waiting_for_client else "incomplete"
    if part.status == "running" and part.stop_action is not None:
        return "cancelling"
    return _STATUS[part.status]


def function_call(call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(call.get("id")),
        "type": "function",
        "function": {"name": str(call.get("name")), "arguments": arguments(call.get("args"))},
    }


def run_object(
    record: RunRecord, snap: Snapshot, started: Run | None, *, status: str | None = None
) -> RunObject:
    status = status or snap.status
    part = snap.part
    ended = epoch(part.ended_at) if part is not None else None
    error = part.error if part is not None and status == "failed" else None
    return RunObject.model_validate(
        {
            "id": ids.wire("run", record.run_id),
            "object": "thread.run",
            "created_at": epoch(record.created_at),
            "thread_id": ids.wire("thread", record.thread_id),
            "assistant_id": ids.wire("assistant", record.assistant_id),
            "status": status,
            "started_at": epoch(started.started_at) if started is not None else None,
            "expires_at": None,
            "cancelled_at": (
                (epoch(record.cancelled_at) or ended) if status == "cancelled" else None
            ),
            "failed_at": ended if status == "failed" else None,
            "completed_at": ended if status == "completed" else None,
            "required_action": (
                {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": [function_call(c) for c in snap.pending]},
                }
                if status == "requires_action"
                else None
            ),
            "last_error": (
                {"code": "server_error", "message": error or "The run failed"}
                if status == "failed"
                else None
            ),
            "incomplete_details": None,
            "model": record.model,
            "instructions": record.instructions,
            "tools": record.tools,
            "metadata": record.metadata,
            "usage": record.usage if status in TERMINAL else None,
            "temperature": record.temperature,
            "top_p": record.top_p,
            "response_format": record.response_format or "auto",
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "truncation_strategy": {"type": "auto", "last_messages": None},
            "max_prompt_tokens": None,
            "max_completion_tokens": None,
        }
    )


@dataclass(frozen=True)
class StepIds:
    thread: str
    run: str
    assistant: str


def tool_call_detail(call: Mapping[str, Any], output: Mapping[str, Any] | None) -> dict[str, Any]:
    if call.get("name") == FILE_SEARCH_TOOL_ID:
        results = file_search_results(passages_of(output)) if output else []
        return {
            "id": str(call.get("id")),
            "type": "file_search",
            "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
                "results": results,
            },
        }
    detail = function_call(call)
    detail["function"]["output"] = text_of(output.get("content")) if output else None
    return detail


def message_step(
    message: Mapping[str, Any], step_ids: StepIds, status: str, created: int, done: int | None
) -> RunStep:
    return _step(
        "message_creation",
        message,
        step_ids,
        status,
        created,
        done,
        {
            "type": "message_creation",
            "message_creation": {"message_id": ids.message_wire(str(message.get("id")))},
        },
    )


def tool_step(
    message: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, Any]],
    step_ids: StepIds,
    status: str,
    created: int,
    done: int | None,
) -> RunStep:
    calls = [
        tool_call_detail(c, outputs.get(str(c.get("id")))) for c in message.get("tool_calls") or []
    ]
    return _step(
        "tool_calls",
        message,
        step_ids,
        status,
        created,
        done,
        {"type": "tool_calls", "tool_calls": calls},
    )


def _step(
    kind: ids.StepKind,
    message: Mapping[str, Any],
    step_ids: StepIds,
    status: str,
    created: int,
    done: int | None,
    details: dict[str, Any],
) -> RunStep:
    return RunStep.model_validate(
        {
            "id": ids.step_wire(kind, str(message.get("id"))),
            "object": "thread.run.step",
            "created_at": created,
            "assistant_id": step_ids.assistant,
            "thread_id": step_ids.thread,
            "run_id": step_ids.run,
            "type": kind,
            "status": status,
            "step_details": details,
            "last_error": None,
            "expired_at": None,
            "cancelled_at": done if status == "cancelled" else None,
            "failed_at": done if status == "failed" else None,
            "completed_at": done if status == "completed" else None,
            "metadata": {},
            "usage": None,
        }
    )


def tool_outputs(messages: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(m.get("tool_call_id")): m for m in messages if m.get("type") == "tool"}


def usage_of(messages: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    prompt = completion = 0
    seen = False
    for message in messages:
        usage = message.get("usage_metadata") if message.get("type") == "ai" else None
        if isinstance(usage, Mapping):
            seen = True
            prompt += int(usage.get("input_tokens") or 0)
            completion += int(usage.get("output_tokens") or 0)
    if not seen:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
