"""``/v1/assistants``: an Assistants assistant is a Loom assistant.

Its ``model``, ``instructions``, ``tools``, ``temperature``, ``top_p`` and ``response_format``
are the Loom config's ``model``, ``system_message``, ``tools``, ``temperature``, ``top_p`` and
``response_format`` (type ``agent``); ``name`` is the assistant's name. What Loom's config has
no place for (``description``, ``metadata``, ``tool_resources``) is kept in ``openai_assistant``
by assistant id. An assistant made in the native API or the UI is listed here too, and the
other way round.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from openai.types.beta import Assistant as AssistantObject
from openai.types.beta import AssistantDeleted

from loom.agents.config import ConfigError, configurable_of, with_overrides
from loom.agents.registry import ResolvedAssistant
from loom.errors import InvalidInput
from loom.storage.assistants import Assistant

from . import ids
from .convert import loom_tools, openai_tools, sampling
from .deps import ClientUser, Core, CoreDep, OwnAssistant, VisibleAssistant
from .knowledge import check_resources, resources_wire
from .store import AssistantExtras
from .wire import AssistantCreate, AssistantUpdate, Order, epoch, page, paginate, respond

router = APIRouter(prefix="/v1/assistants", tags=["openai assistants"])

UNNAMED = "Untitled assistant"


def resolved(core: Core, config: dict[str, Any]) -> ResolvedAssistant | None:
    try:
        return core.factory.resolve(config)
    except ConfigError:
        return None


def tools_of(core: Core, assistant: Assistant) -> tuple[list[Any], list[Any]]:
    found = resolved(core, assistant.config)
    return openai_tools(found.config) if found is not None else ([], [])


def assistant_object(
    core: Core, assistant: Assistant, extras: AssistantExtras | None
) -> AssistantObject:
    extras = extras or AssistantExtras(assistant_id=assistant.assistant_id)
    found = resolved(core, assistant.config)
    conf = configurable_of(assistant.config)
    if found is not None:
        model = found.model.id
        instructions = found.config.system_message
        tools, extension = openai_tools(found.config)
        sampling = dict(found.config.model_settings)
    else:  # a native config that no longer resolves (a tool or model removed since)
        model = str(conf.get("model") or core.settings.default_model)
        instructions = str(conf.get("system_message") or "")
        tools, extension, sampling = [], [], {}
    unnamed = extras.unnamed and assistant.name == UNNAMED
    return AssistantObject.model_validate(
        {
            "id": ids.wire("assistant", assistant.assistant_id),
            "object": "assistant",
            "created_at": epoch(assistant.created_at),
            "name": None if unnamed or not assistant.name else assistant.name,
            "description": extras.description,
            "model": model,
            "instructions": instructions or None,
            "tools": tools,
            "tool_resources": resources_wire(extras.tool_resources),
            "metadata": extras.metadata,
            "temperature": sampling.get("temperature"),
            "top_p": sampling.get("top_p"),
            "response_format": sampling.get("response_format", "auto"),
            "loom_tools": extension,
        }
    )


def _validate(core: Core, config: dict[str, Any]) -> None:
    try:
        core.factory.resolve(config)
    except ConfigError as exc:
        raise InvalidInput(f"Invalid assistant: {exc}") from exc


@router.post("")
async def create_assistant(body: AssistantCreate, user: ClientUser, core: CoreDep) -> JSONResponse:
    config = {
        "configurable": {
            "type": "agent",
            "model": body.model,
            "system_message": body.instructions or "",
            "tools": loom_tools(body.tools, body.loom_tools),
            **sampling(body, body.model_fields_set),
        }
    }
    _validate(core, config)
    resources = await check_resources(core, user.user_id, body.tool_resources)
    assistant = await core.assistants.create(
        user.user_id, body.name or UNNAMED, config, public=False
    )
    extras = AssistantExtras(
        assistant_id=assistant.assistant_id,
        unnamed=body.name is None,
        description=body.description,
        metadata=body.metadata or {},
        tool_resources=resources,
    )
    await core.store.save_assistant_extras(extras)
    return respond(assistant_object(core, assistant, extras))


@router.get("")
async def list_assistants(
    user: ClientUser,
    core: CoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> JSONResponse:
    mine = sorted(
        await core.assistants.list_own(user.user_id),
        key=lambda a: (a.created_at, a.assistant_id),
    )
    chosen, more = paginate(
        mine,
        lambda a: ids.wire("assistant", a.assistant_id),
        order=order,
        limit=limit,
        after=after and ids.wire("assistant", ids.parse("assistant", after)),
        before=before and ids.wire("assistant", ids.parse("assistant", before)),
    )
    extras = await core.store.assistant_extras(a.assistant_id for a in chosen)
    data = [assistant_object(core, a, extras.get(a.assistant_id)) for a in chosen]
    return respond(page(data, more))


@router.get("/{assistant_id}")
async def get_assistant(assistant: VisibleAssistant, core: CoreDep) -> JSONResponse:
    extras = await core.store.assistant_extras([assistant.assistant_id])
    return respond(assistant_object(core, assistant, extras.get(assistant.assistant_id)))


@router.post("/{assistant_id}")
async def modify_assistant(
    body: AssistantUpdate, assistant: OwnAssistant, user: ClientUser, core: CoreDep
) -> JSONResponse:
    given = body.model_fields_set
    found = await core.store.assistant_extras([assistant.assistant_id])
    extras = found.get(assistant.assistant_id) or AssistantExtras(
        assistant_id=assistant.assistant_id
    )
    changes: dict[str, Any] = {}
    if body.model is not None:
        changes["model"] = body.model
    if "instructions" in given:
        changes["system_message"] = body.instructions or ""
    if "tools" in given or "loom_tools" in given:
        tools, extension = tools_of(core, assistant)
        changes["tools"] = loom_tools(
            body.tools if "tools" in given else tools,
            body.loom_tools if "loom_tools" in given else extension,
        )
    changes.update(sampling(body, given))
    config = dict(with_overrides(assistant.config, changes))
    _validate(core, config)
    name = assistant.name
    if "name" in given:
        name = body.name or UNNAMED
        extras.unnamed = body.name is None
    if "tool_resources" in given:
        extras.tool_resources = await check_resources(core, user.user_id, body.tool_resources)
    if "description" in given:
        extras.description = body.description
    if "metadata" in given:
        extras.metadata = body.metadata or {}
    updated = await core.assistants.update(
        user.user_id, assistant.assistant_id, name, config, assistant.public
    )
    if updated is None:
        raise ids.not_found("assistant", ids.wire("assistant", assistant.assistant_id))
    await core.store.save_assistant_extras(extras)
    return respond(assistant_object(core, updated, extras))


@router.delete("/{assistant_id}")
async def delete_assistant(
    assistant: OwnAssistant, user: ClientUser, core: CoreDep
) -> JSONResponse:
    await core.assistants.delete(user.user_id, assistant.assistant_id)
    deleted = AssistantDeleted(
        id=ids.wire("assistant", assistant.assistant_id), object="assistant.deleted", deleted=True
    )
    return respond(deleted)
