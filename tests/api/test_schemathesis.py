"""Schemathesis against Loom's own ``/openapi.json``: every check, two users, bounded in time.

A real Loom server (JWT auth, the fake OpenAI server as its model) is fuzzed by the
``schemathesis`` CLI: the examples, coverage, fuzzing and stateful phases, every check
(``--checks all``: no 5xx, every status and body as declared, invalid data refused, valid data
accepted, no object of one user readable by the other, ...). Alice and Bob are the two peers
of the object-level authorization check. The run is bounded by ``--max-time`` and the
number of examples per operation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI

SECRET = "a-schemathesis-hs256-secret-long-enough-for-pyjwt"
USERS = ("alice", "bob")
# The whole run stays within about three minutes on a 2-core machine.
MAX_TIME_SECONDS = int(os.environ.get("LOOM_TEST_SCHEMATHESIS_SECONDS", "150"))
# Strategies for values the document can only name (page cursors).
HOOKS = "tests.api.schemathesis_hooks"
ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("LOOM_TEST_SCHEMATHESIS_EXAMPLES", "20"))
# More arguments for the CLI while working on a part, e.g. "--include-path-regex ^/chatkit".
EXTRA_ARGS = os.environ.get("LOOM_TEST_SCHEMATHESIS_ARGS", "").split()
# What valid data may answer under /v1: schemathesis's default plus 400 (see _config).
V1_ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]


def _token(user: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    settings = make_settings(database_url, fake_llm, auth="jwt", jwt_secret=SECRET)
    with LoomServer(settings) as loom:
        yield loom


def _config(tmp_path: Path) -> Path:
    auth = {
        "auth": [
            {
                "name": user,
                "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {_token(user)}"}],
            }
            for user in USERS
        ]
    }
    (tmp_path / "auth.json").write_text(json.dumps(auth))
    config = tmp_path / "schemathesis.toml"
    # Loom refuses NUL characters in every string it stores or queries with (documented in
    # the README; tests/api/test_bad_input_sweep.py sends them everywhere). JSON Schema cannot
    # say so of the keys and nested values of free-form objects (metadata, config), so the
    # fuzzer is told the rule instead of generating NULs (and only UTF-8 encodable text).
    #
    # /v1 is OpenAI's Assistants protocol, where a request valid by the schema may still
    # answer 400: a state conflict (a thread that already has an active run, cancelling a
    # finished run, tool outputs for a run that is not waiting for them) or a value that is
    # well-formed but names nothing usable (code_interpreter, a model that does not resolve).
    # OpenAI answers those with 400 and its SDK raises BadRequestError for them
    # (tests/protocols/openai expect it), so for /v1 only, 400 is an acceptable answer to
    # valid data; every other check, and every other route, is unchanged.
    config.write_text(
        f'hooks = "{HOOKS}"\n'
        f'[auth.wfc]\npath = "{tmp_path / "auth.json"}"\npeers = {json.dumps(list(USERS))}\n'
        '[generation]\nallow-x00 = false\ncodec = "utf-8"\n'
        '[[operations]]\ninclude-path-regex = "^/v1/"\n'
        f"checks.positive_data_acceptance.expected-statuses = {json.dumps(V1_ACCEPTED)}\n"
    )
    return config


def test_schemathesis_finds_nothing(server: LoomServer, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(_config(tmp_path)),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_SECONDS),
        # One worker: with two, Hypothesis describing its lambdas (ast.parse in two threads at
        # once) trips a CPython 3.11 bug ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--seed",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
        *EXTRA_ARGS,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=MAX_TIME_SECONDS + 120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = done.stdout + done.stderr
    print(out)
    assert done.returncode == 0, out[-20000:]
    # Warnings (an operation whose ids were never found, say) are not failures; every
    # generated case must have passed.
    totals = re.search(r"(\d+) generated, (\d+) passed", out)
    assert totals is not None and totals[1] == totals[2], out[-5000:]
