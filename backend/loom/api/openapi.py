"""The OpenAPI document says every status a route can answer, with its body.

FastAPI documents a route's success and its request validation; :func:`install_openapi`
adds, in this one place, the error answers Loom gives, by rule:

* every operation: ``429`` (rate limited, with ``Retry-After``) and ``503`` (the database
  or the server is not ready);
* an authenticated one (it depends on the caller): ``401``;
* one with an id in its path, body or query: ``404`` (missing, malformed and foreign ids
  alike);
* one with a request body: ``400`` (a body that cannot be parsed), ``413`` (over the body
  limit), ``415`` (a content type it does not take) and its validation status;
* whatever a route adds with ``responses=errors(...)`` (``409`` busy thread, ``403``, ...).

Every error has its protocol's one body shape: the native API's ``{"detail": "message"}``
(``{"detail": [{"loc", "msg", "type"}]}`` for ``422``), ChatKit's ``{"detail", "code"}`` and,
under ``/v1``, OpenAI's ``{"error": {...}}`` (which answers invalid requests with ``400``, never
``422``). Server-Sent Events routes are documented as ``text/event-stream`` with the schema of
one event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field

SSE = "text/event-stream"

DESCRIPTIONS: dict[int, str] = {
    400: "The request body or a parameter is not valid",
    401: "Missing or invalid credentials",
    403: "Not allowed with these credentials",
    404: "Not found (or not yours)",
    409: "The thread already has a run in progress (or another conflict with its state)",
    413: "The request body is over the limit",
    415: "The request body's content type is not accepted",
    422: "The request body or a parameter is not valid",
    429: "Too many requests; retry after the Retry-After header's seconds",
    503: "The database is unavailable or the server is starting; retry shortly",
}


class ErrorOut(BaseModel):
    """The native API's error body."""

    detail: str = Field(description="What went wrong, safe to show")


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path, header, then the field")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """The native API's ``422`` body: one entry per invalid value."""

    detail: list[ValidationIssue]


class ChatKitErrorOut(BaseModel):
    """ChatKit's error body (``POST /chatkit`` and its uploads)."""

    detail: str
    code: str = Field(description="Loom's stable error code (not_found, thread_busy, ...)")


SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event (comment lines are heartbeats)",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that answers these error statuses beyond the rules above
    (the body shape is filled in by :func:`install_openapi`)."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def event_stream(description: str, *, json_too: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route whose ``200`` is a Server-Sent Events stream (or, with
    ``json_too``, either a stream or a JSON body)."""
    content: dict[str, Any] = {SSE: {"schema": SSE_EVENT}}
    if json_too:
        content["application/json"] = {"schema": {}}
    return {200: {"description": description, "content": content}}


def _protocol(path: str) -> str:
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    if path == "/chatkit" or path.startswith("/chatkit/"):
        return "chatkit"
    return "native"


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _rule_statuses(
    method: str, path: str, route: APIRoute, operation: dict[str, Any], authenticated: set[Any]
) -> set[int]:
    protocol = _protocol(path)
    statuses = {429, 503}
    if any(call in authenticated for call in _calls(route.dependant)):
        statuses.add(401)
    has_body = "requestBody" in operation
    has_params = bool(operation.get("parameters"))
    if "{" in path or has_body or has_params:
        statuses.add(404)
    if has_body:
        statuses |= {400, 415}
    if has_body or method in ("POST", "PUT", "PATCH"):
        statuses.add(413)  # any body sent is held to the limit
    if has_body or has_params:
        statuses.add(400 if protocol == "openai" else 422)
    return statuses


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error_model(protocol: str, status: int, openai: type[BaseModel]) -> type[BaseModel]:
    if protocol == "openai":
        return openai
    if protocol == "chatkit" and status not in (401, 422, 429, 503):
        return ChatKitErrorOut
    return ValidationErrorOut if status == 422 else ErrorOut


def _document(
    method: str,
    path: str,
    route: APIRoute,
    operation: dict[str, Any],
    authenticated: set[Any],
    openai: type[BaseModel],
) -> None:
    protocol = _protocol(path)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if protocol == "openai":
        responses.pop("422", None)  # /v1 answers invalid requests with 400
    for status in _rule_statuses(method, path, route, operation, authenticated):
        responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
    for key, response in responses.items():
        if not key.isdigit() or int(key) < 400:
            continue
        status = int(key)
        response["description"] = response.get("description") or DESCRIPTIONS.get(status, "")
        model = _error_model(protocol, status, openai)
        response["content"] = {"application/json": {"schema": _schema_ref(model)}}
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
    ok = responses.get("200", {})
    if SSE in ok.get("content", {}):
        # Only the media types the route declares (FastAPI adds a JSON one of its own).
        declared = route.responses.get(200, {}).get("content", {})
        ok["content"] = {media: ok["content"][media] for media in declared}


MODELS: tuple[type[BaseModel], ...] = (ErrorOut, ValidationErrorOut, ChatKitErrorOut)


def install_openapi(
    app: FastAPI,
    authenticated: set[Any],
    openai_error: type[BaseModel],
    components: Mapping[str, Any] | None = None,
) -> None:
    """Build ``app``'s OpenAPI document by the rules above (once, on first use).
    ``authenticated`` are the dependencies that identify the caller (their routes may 401);
    ``openai_error`` is the error body under ``/v1``; ``components`` are schemas routes refer
    to by hand (bodies a route reads itself)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in (*MODELS, openai_error):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        schemas.update(components or {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if not isinstance(route, APIRoute) or not context.include_in_schema:
                continue
            path = context.path_format or ""
            operations = doc["paths"].get(path, {})
            for method in context.methods or ():
                operation = operations.get(method.lower())
                if operation is not None:
                    _document(method, path, route, operation, authenticated, openai_error)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
