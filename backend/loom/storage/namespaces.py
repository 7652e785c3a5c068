"""Document namespaces: which assistant or thread a retrieval document belongs to."""

from __future__ import annotations

import uuid
from typing import Literal

Owner = Literal["assistant", "thread"]


def namespace(kind: Owner, owner_id: uuid.UUID) -> str:
    """``assistant:<uuid>`` or ``thread:<uuid>``: the ``document.namespace`` of its documents."""
    return f"{kind}:{owner_id}"
