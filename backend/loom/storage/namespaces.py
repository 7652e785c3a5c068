"""Document namespaces: which assistant, thread or collection a retrieval document belongs to.

A *collection* is a set of documents a protocol keeps for a user outside any one assistant or
thread (e.g. an OpenAI vector store); the protocol owns its record and checks who may search
it before naming it in a run (``RunRequest.namespaces``).
"""

from __future__ import annotations

import uuid
from typing import Literal, get_args

Owner = Literal["assistant", "thread", "collection"]
_KINDS: frozenset[str] = frozenset(get_args(Owner))


def namespace(kind: Owner, owner_id: uuid.UUID) -> str:
    """``<kind>:<uuid>``: the ``document.namespace`` of its documents."""
    return f"{kind}:{owner_id}"


def is_namespace(value: object) -> bool:
    """Whether ``value`` is a namespace :func:`namespace` could have made."""
    if not isinstance(value, str):
        return False
    kind, _, rest = value.partition(":")
    if kind not in _KINDS:
        return False
    try:
        return str(uuid.UUID(rest)) == rest
    except ValueError:
        return False
