"""Schemathesis hooks (loaded by tests/api/test_schemathesis.py): how to make the values the
OpenAPI document can only name.

A page ``cursor`` is opaque (``format: loom-cursor``): only cursors Loom gave are valid, so
the fuzzer makes real ones, of any position, instead of random strings.

A multipart part declared as a file (``format: binary``) is sent as a file part whatever
value the fuzzer drew for it: a ``file`` "violating" its type as ``true`` arrives as a file
named ``file`` holding the four bytes ``true``, a valid upload. Accepting it is not a
failure (only that one case: every other invalid value must still be refused).

A file's bytes must be what its part's content type says (Loom looks: a PNG sent as
``application/pdf`` is 415), which no schema can express and the fuzzer cannot know: on the
ChatKit upload routes a 415 for such a file is not counted as valid data refused.

One object, several routes: an assistant is ``/assistants/{id}`` and ``/v1/assistants/{id}``,
a thread is ``/threads/{id}``, ``/v1/threads/{id}`` and a ChatKit thread. The stateful phase
knows only a ``DELETE`` of the same path as a removal, so after ``DELETE /v1/assistants/{id}``
it reports the 404 of ``DELETE /assistants/{id}`` as "created resource not found" (ST302).
Every successful removal, by any route, is recorded here (:func:`record_removals`), and that
report is dropped only for an id recorded as removed; every other one stands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData
from schemathesis.transport.serialization import Binary

from loom.api.paging import CURSOR_FORMAT, encode_cursor
from loom.storage.paging import Position

_WHEN = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

schemathesis.openapi.format(
    CURSOR_FORMAT,
    st.builds(lambda when, ident: encode_cursor(Position(when, str(ident))), _WHEN, st.uuids()),
)


def _file_part_drawn_as_another_type(case: Any) -> bool:
    body = case.body
    return isinstance(body, dict) and not isinstance(body.get("file"), bytes | str | Binary)


@schemathesis.hook("filter_failure").apply_to(path="/v1/files", method="POST")
def file_parts_are_files(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but "accepted" for a ``file`` drawn as a non-file value."""
    return not (
        isinstance(failure, AcceptedNegativeData) and _file_part_drawn_as_another_type(case)
    )


def _refused_file_content(failure: Any, response: Any) -> bool:
    return isinstance(failure, RejectedPositiveData) and response.status_code == 415


@schemathesis.hook("filter_failure").apply_to(path="/chatkit/upload", method="POST")
def direct_upload_file_content(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a 415 for bytes that are not what their content type says."""
    return not _refused_file_content(failure, response)


@schemathesis.hook("filter_failure").apply_to(
    path="/chatkit/attachments/{attachment_id}/upload", method="POST"
)
def attachment_upload_file_content(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """The same for the upload of a created attachment."""
    return not _refused_file_content(failure, response)


# Ids of objects a request of this run removed (the hooks run in the one CLI process).
_REMOVED: set[str] = set()


def _removed_by(case: Any) -> str | None:
    """The id a successful request removed, if it was a removal: the last path parameter of a
    ``DELETE`` (``/threads/{thread_id}/files/{filename}`` removes the file, not the thread),
    or the thread of a ChatKit ``threads.delete``."""
    if case.method.upper() == "DELETE" and case.path_parameters:
        return str(list(case.path_parameters.values())[-1])
    body = case.body
    if case.path == "/chatkit" and isinstance(body, dict) and body.get("type") == "threads.delete":
        params = body.get("params")
        if isinstance(params, dict) and isinstance(params.get("thread_id"), str):
            return str(params["thread_id"])
    return None


@schemathesis.hook("after_call")
def record_removals(ctx: Any, case: Any, response: Any) -> None:
    """Remember what a successful removal removed, whichever route it took."""
    if 200 <= response.status_code < 300:
        removed = _removed_by(case)
        if removed is not None:
            _REMOVED.add(removed)


@schemathesis.hook("filter_failure")
def removed_through_another_route(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but "created resource not found" for an object that a request of
    this run removed through another of its routes."""
    if not isinstance(failure, EnsureResourceAvailability):
        return True
    return not any(str(value) in _REMOVED for value in (case.path_parameters or {}).values())
