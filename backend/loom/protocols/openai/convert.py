"""Translations between Assistants shapes and Loom's: tools, message content, citations.

Tools. An Assistants ``function`` tool is Loom's client-side function entry (the same
``{"type": "function", "function": {...}}`` shape); ``file_search`` is Loom's ``retrieval``
tool, told to cite what it uses as ``【n†filename】``; ``code_interpreter`` is refused (Loom runs
no code). Loom's server-side tools travel in the extension field ``loom_tools``: a list of
entries exactly as the native assistant config writes them (``"wikipedia"``,
``{"type": "web_fetch"}``, ``{"type": "retrieval", "config": {...}}``).

Messages. A thread's messages are LangChain messages. ``human`` is a ``user`` message, ``ai``
with text is an ``assistant`` message; tool messages, system messages and AI messages that
only call tools are not messages in OpenAI's sense (tool calls are run steps).

Citations. The ``retrieval`` tool keeps the passages it returned on its tool message
(``artifact``). In an assistant message, a marker ``【n†name】`` (or ``【m:n†name】``) becomes a
``file_citation`` annotation for the file of the passage it names: the passage whose file
name is ``name``, else the ``n``-th passage (from 0) of the searches since the user's last
message. Passages of documents not uploaded through ``/v1`` (no file id) are not cited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openai.types.beta.threads import Message

from loom.agents.config import AssistantConfig
from loom.errors import InvalidInput
from loom.protocols.openai import ids

FILE_SEARCH_TOOL_ID = "retrieval"
FILE_SEARCH_DESCRIPTION = (
    "Search the files attached to this assistant and this conversation. Use it when the user "
    "asks about their files or something they may answer. Input: a search query. When your "
    "answer uses a passage, cite it right after the sentence as 【n†filename】, where n is the "
    "passage's position in the results (0 for the first) and filename its source."
)
_MARKER = re.compile(r"【(?:\d+:)?(\d+)†([^】]*)】")


# -- tools ------------------------------------------------------------------------------------


def loom_tools(
    tools: Sequence[Mapping[str, Any]] | None, extension: Sequence[Any] | None
) -> list[Any]:
    """Loom config tool entries for Assistants ``tools`` plus ``loom_tools``."""
    out: list[Any] = []
    for index, tool in enumerate(tools or []):
        kind = tool.get("type")
        if kind == "function":
            function = tool.get("function")
            if not isinstance(function, Mapping):
                raise InvalidInput(f"tools[{index}].function is required")
            entry = {
                key: function[key]
                for key in ("name", "description", "parameters")
                if function.get(key) is not None
            }
            out.append({"type": "function", "function": entry})
        elif kind == "file_search":
            out.append(
                {"type": FILE_SEARCH_TOOL_ID, "config": {"description": FILE_SEARCH_DESCRIPTION}}
            )
        elif kind == "code_interpreter":
            raise InvalidInput(
                "code_interpreter is not supported: Loom does not run code. Use function tools "
                "(run by your client) or Loom's server-side tools (loom_tools)."
            )
        else:
            raise InvalidInput(
                f"tools[{index}].type must be 'function' or 'file_search' (not {kind!r}); "
                "Loom's own tools go in loom_tools"
            )
    out.extend(extension or [])
    return out


def openai_tools(config: AssistantConfig) -> tuple[list[Any], list[Any]]:
    """(Assistants ``tools``, ``loom_tools``) of a resolved Loom config."""
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": f.name,
                "description": f.description or None,
                "parameters": f.parameters,
            },
        }
        for f in config.functions
    ]
    extension: list[Any] = []
    for ref in config.tools:
        if ref.id == FILE_SEARCH_TOOL_ID:
            tools.append({"type": "file_search"})
        else:
            extension.append({"type": ref.id, "config": ref.config} if ref.config else ref.id)
    return tools, extension


def sampling(options: Any, given: Iterable[str]) -> dict[str, Any]:
    """Loom config keys for the ``temperature``, ``top_p`` and ``response_format`` a request
    gave (``None`` or ``"auto"``: the model's default)."""
    out: dict[str, Any] = {}
    for key in ("temperature", "top_p", "response_format"):
        if key in given:
            value = getattr(options, key)
            out[key] = None if value == "auto" else value
    return out


# -- messages ---------------------------------------------------------------------------------


def human_content(content: str | Sequence[Mapping[str, Any]]) -> str | list[dict[str, Any]]:
    """LangChain content for an Assistants message's ``content``."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), Mapping):
            url = part["image_url"].get("url")
            if not isinstance(url, str) or not url:
                raise InvalidInput(f"content[{index}].image_url.url is required")
            image: dict[str, Any] = {"url": url}
            if part["image_url"].get("detail"):
                image["detail"] = part["image_url"]["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "image_file":
            raise InvalidInput("image_file content is not supported; send an image_url instead")
        else:
            raise InvalidInput(f"content[{index}] must be a text or image_url part")
    if not parts:
        raise InvalidInput("content must not be empty")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts) if len(parts) == 1 else parts
    return parts


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") == "text")
        )
    return ""


def is_visible(message: Mapping[str, Any]) -> bool:
    """Whether a LangChain message is an Assistants message (user, or assistant text)."""
    kind = message.get("type")
    if kind == "human":
        return True
    if kind == "ai":
        content = message.get("content")
        if isinstance(content, list):
            return any(
                isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") != "tool_use")
                for p in content
            )
        return bool(content)
    return False


def content_blocks(content: Any, annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": annotations}}]
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": {"value": part, "annotations": []}})
        elif isinstance(part, Mapping) and part.get("type") == "text":
            text = str(part.get("text", ""))
            blocks.append({"type": "text", "text": {"value": text, "annotations": []}})
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            detail = image.get("detail", "auto") if isinstance(image, Mapping) else "auto"
            blocks.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
    if annotations:
        for block in blocks:
            if block["type"] == "text":
                block["text"]["annotations"] = annotations
                break
    return blocks


def message_object(
    message: Mapping[str, Any],
    *,
    thread_id: str,
    created_at: int,
    assistant_id: str | None,
    run_id: str | None,
    metadata: Mapping[str, Any] | None,
    attachments: Sequence[Any] | None,
    passages: Sequence[Mapping[str, Any]] = (),
    status: str = "completed",
) -> Message:
    role = "user" if message.get("type") == "human" else "assistant"
    content = message.get("content", "")
    annotations = citations(text_of(content), passages) if role == "assistant" else []
    return Message.model_validate(
        {
            "id": ids.message_wire(str(message.get("id"))),
            "object": "thread.message",
            "created_at": created_at,
            "thread_id": thread_id,
            "role": role,
            "status": status,
            "content": content_blocks(content, annotations) if status == "completed" else [],
            "assistant_id": assistant_id if role == "assistant" else None,
            "run_id": run_id if role == "assistant" else None,
            "attachments": list(attachments or []),
            "metadata": dict(metadata or {}),
            "completed_at": created_at if status == "completed" else None,
            "incomplete_at": None,
            "incomplete_details": None,
        }
    )


# -- citations --------------------------------------------------------------------------------


def passages_before(messages: Sequence[Mapping[str, Any]], index: int) -> list[dict[str, Any]]:
    """The passages the searches between the last user message and ``messages[index]``
    returned, in order."""
    found: list[dict[str, Any]] = []
    for message in reversed(messages[:index]):
        if message.get("type") == "human":
            break
        found[:0] = passages_of(message)
    return found


def passages_of(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    if message.get("type") != "tool" or message.get("name") != FILE_SEARCH_TOOL_ID:
        return []
    artifact = message.get("artifact")
    return [p for p in artifact if isinstance(p, dict)] if isinstance(artifact, list) else []


def citations(text: str, passages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for match in _MARKER.finditer(text):
        position, name = int(match.group(1)), match.group(2).strip()
        named = [p for p in passages if name and name in (p.get("filename"), p.get("source"))]
        chosen = named[0] if named else passages[position] if position < len(passages) else None
        file_id = chosen.get("file_id") if chosen else None
        if not isinstance(file_id, str):
            continue
        try:
            wire_id = ids.wire("file", ids.parse("file", file_id))
        except Exception:
            continue
        out.append(
            {
                "type": "file_citation",
                "text": match.group(0),
                "start_index": match.start(),
                "end_index": match.end(),
                "file_citation": {"file_id": wire_id},
            }
        )
    return out


def file_search_results(passages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for passage in passages:
        file_id = passage.get("file_id")
        if not isinstance(file_id, str):
            continue
        results.append(
            {
                "file_id": ids.wire("file", ids.parse("file", file_id)),
                "file_name": str(passage.get("filename") or passage.get("source") or ""),
                "score": float(passage.get("score") or 0.0),
            }
        )
    return results


def arguments(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args or {}, ensure_ascii=False)
