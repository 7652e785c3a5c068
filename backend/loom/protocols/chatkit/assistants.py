"""Which assistant answers a thread created through ChatKit.

1. The one named by the request's ``metadata.assistant_id`` (the caller's own or a public
   one; any other id answers 404, like the native API).
2. Else the caller's most recently updated assistant: the one they last worked on in Loom.
3. Else, on first use, a new assistant of theirs named "ChatKit": a tool agent with the
   retrieval tool (so attached files are searched), or a plain chatbot where that tool is
   not available.
"""

from __future__ import annotations

import uuid
from typing import Any

from chatkit.store import NotFoundError

from loom.agents.config import ConfigError
from loom.agents.registry import AgentFactory
from loom.protocols.chatkit.context import ChatKitContext
from loom.storage.assistants import AssistantRepo

DEFAULT_NAME = "ChatKit"
DEFAULT_CONFIGS: tuple[dict[str, Any], ...] = (
    {"configurable": {"type": "agent", "tools": [{"type": "retrieval"}]}},
    {"configurable": {"type": "chatbot"}},
)


class AssistantChooser:
    def __init__(self, assistants: AssistantRepo, factory: AgentFactory) -> None:
        self._assistants = assistants
        self._factory = factory

    async def for_new_thread(self, context: ChatKitContext) -> uuid.UUID:
        user_id = context.user_id
        if context.assistant_id is not None:
            named = await self._assistants.get_visible(user_id, context.assistant_id)
            if named is None:
                raise NotFoundError("Assistant not found")
            return named.assistant_id
        own = await self._assistants.list_own(user_id)
        if own:
            return own[0].assistant_id
        created = await self._assistants.create(user_id, DEFAULT_NAME, self._default(), False)
        return created.assistant_id

    def _default(self) -> dict[str, Any]:
        for config in DEFAULT_CONFIGS:
            try:
                self._factory.resolve(config)
            except ConfigError:
                continue
            return config
        return DEFAULT_CONFIGS[-1]
