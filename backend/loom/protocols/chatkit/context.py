"""The request context ChatKit hands to every store and server method: who is asking.

ChatKit has no authentication of its own: the router authenticates the HTTP request (the
same ``CurrentUser`` dependency as every Loom route) and puts the user here; every store
method answers only for that user's threads, items and attachments.

Loom reads two keys of a request's ``metadata`` (the ``metadata`` object beside ``type`` and
``params`` in every ChatKit request body):

* ``assistant_id``: the assistant that answers a thread created by this request
  (``threads.create``); ignored for an existing thread, which keeps its assistant.
* ``on_disconnect``: what happens to the turn's run when the client goes away mid-stream
  (ChatKit's stop button aborts the request): ``"cancel"`` (default: the run stops, the
  partial reply is kept) or ``"continue"`` (the run finishes; its reply shows on reload).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from loom.errors import BadRequest
from loom.limits import StreamSlot

OnDisconnect = Literal["cancel", "continue"]


class LoomMetadata(BaseModel):
    """The request-metadata keys Loom reads; any others are ignored."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: uuid.UUID | None = None
    on_disconnect: OnDisconnect = "cancel"


@dataclass
class ChatKitContext:
    """One ChatKit request: the caller, Loom's metadata keys, and the public base URL."""

    user_id: str
    base_url: str = "http://localhost/"
    assistant_id: uuid.UUID | None = None
    on_disconnect: OnDisconnect = "cancel"
    # A streaming request's place among the caller's open streams (taken by the router).
    stream_slot: StreamSlot | None = None

    @classmethod
    def of(cls, user_id: str, metadata: dict[str, Any], base_url: str) -> ChatKitContext:
        try:
            parsed = LoomMetadata.model_validate(metadata)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise BadRequest(f"Invalid request metadata: {fields}") from exc
        return cls(
            user_id=user_id,
            base_url=base_url,
            assistant_id=parsed.assistant_id,
            on_disconnect=parsed.on_disconnect,
        )
