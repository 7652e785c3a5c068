"""The OpenAPI description of what ``POST /chatkit`` and the upload routes take.

``POST /chatkit`` reads its body itself (``ChatKitServer.process`` parses the bytes), so FastAPI
cannot describe it. These schemas say what Loom answers: the request types of
``openai-chatkit``'s ``ChatKitReq`` that Loom serves (not client tools, structured input,
dictation or synchronous actions: those answer 400), with the ``type`` each one needs, the two
custom actions Loom offers (approve and reject a paused tool call) and the files an attachment may
announce (what ``POST /ingest`` takes, within ``LOOM_INGEST_MAX_FILE_BYTES``).
"""

from __future__ import annotations

import warnings
from typing import Any

from chatkit.types import ChatKitReq
from pydantic import TypeAdapter
from pydantic.json_schema import PydanticJsonSchemaWarning

from loom.protocols.chatkit import render
from loom.retrieval.loaders import content_types
from loom.settings import Settings

PREFIX = "ChatKit"
REQUEST = f"{PREFIX}Request"
_REF = "#/components/schemas/"

# The request types Loom serves, by their ``type``.
SERVED = (
    "threads.create",
    "threads.add_user_message",
    "threads.retry_after_item",
    "threads.custom_action",
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "threads.delete",
    "items.list",
    "items.feedback",
    "attachments.create",
    "attachments.delete",
)


def _refs(node: Any) -> set[str]:
    """The component names a schema refers to."""
    if isinstance(node, dict):
        found = {node["$ref"].removeprefix(_REF)} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def components(settings: Settings) -> dict[str, Any]:
    """Component schemas: ``ChatKitRequest`` (the body of ``POST /chatkit``) and what it uses."""
    with warnings.catch_warnings():
        # A generic default (``~TType``) has no JSON form; pydantic leaves it out and says so.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        whole = TypeAdapter(ChatKitReq).json_schema(ref_template=_REF + PREFIX + "{model}")
    defs: dict[str, Any] = {PREFIX + name: schema for name, schema in whole.pop("$defs").items()}
    mapping = whole["discriminator"]["mapping"]
    served = {kind: mapping[kind] for kind in SERVED}
    for schema in defs.values():
        # pydantic fills in a discriminator left out; the library's unions need it sent.
        kind = schema.get("properties", {}).get("type", {})
        if "const" in kind:
            schema["required"] = sorted({*schema.get("required", ()), "type"})
    action = _params(defs, "threads.custom_action", mapping)["properties"]["action"]
    action_schema = defs[action["$ref"].removeprefix(_REF)]
    action_schema["properties"]["type"] = {
        "type": "string",
        "enum": [render.APPROVE, render.REJECT],
    }
    action_schema["properties"]["payload"] = {
        "type": "object",
        "properties": {"message_id": {"type": "string"}},
        "required": ["message_id"],
    }
    action_schema["required"] = sorted({*action_schema.get("required", ()), "type", "payload"})
    create = _params(defs, "attachments.create", mapping)["properties"]
    create["mime_type"] = {"type": "string", "enum": sorted(content_types())}
    create["size"] = {"type": "integer", "minimum": 0, "maximum": settings.ingest_max_file_bytes}
    request_schema = {
        "oneOf": [{"$ref": ref} for ref in served.values()],
        "discriminator": {"propertyName": "type", "mapping": served},
    }
    out: dict[str, Any] = {REQUEST: request_schema}
    todo = _refs(request_schema)
    while todo:  # only what the served requests use
        name = todo.pop()
        if name not in out:
            out[name] = defs[name]
            todo |= _refs(defs[name])
    return out


def _params(defs: dict[str, Any], kind: str, mapping: dict[str, str]) -> dict[str, Any]:
    request = defs[mapping[kind].removeprefix(_REF)]
    params: dict[str, Any] = defs[request["properties"]["params"]["$ref"].removeprefix(_REF)]
    return params


def request_body() -> dict[str, Any]:
    """``openapi_extra`` of ``POST /chatkit``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + REQUEST}}},
        }
    }


def upload_body() -> dict[str, Any]:
    """``openapi_extra`` of the upload routes: one file, as the multipart field ``file``."""
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"],
        "additionalProperties": False,
    }
    # The file's content type says what it is (a name's extension may say it instead).
    encoding = {"file": {"contentType": ", ".join(sorted(content_types()))}}
    multipart = {"schema": schema, "encoding": encoding}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": multipart}}}
