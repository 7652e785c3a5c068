"""The browser tests: the built UI in Debian's headless Chromium against a real Loom.

This module starts Loom (with the built ``frontend/dist``) and the fake LLM, then runs
``npm run e2e`` in ``frontend/`` (playwright-core driving ``/usr/bin/chromium``) with
``LOOM_E2E_BASE_URL`` and ``LOOM_E2E_FAKE_URL`` (the fake's ``/_control/*`` scripting
endpoints). Screenshots land in ``frontend/e2e/artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.conftest import ROOT, LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI

FRONTEND = ROOT / "frontend"
CHROMIUM = "/usr/bin/chromium"


JWT_SECRET = "e2e-secret-for-the-browser-tests"


@pytest.fixture(scope="module")
def token_server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    settings = make_settings(database_url, fake_llm, auth="jwt", jwt_secret=JWT_SECRET)
    with LoomServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def ui_server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    if not (FRONTEND / "dist" / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make ui` (make test does it first)")
    if not (FRONTEND / "node_modules").is_dir():
        pytest.fail("frontend/node_modules is missing: run `npm ci` in frontend/")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)")
    settings = make_settings(
        database_url,
        fake_llm,
        fetch_allow_private=True,
        embedding_dimensions=64,
        # The browser test of stream errors injects one failure: no silent retry here.
        model_max_retries=0,
    )
    with LoomServer(settings) as server:
        yield server


def test_browser_end_to_end(
    ui_server: LoomServer, token_server: LoomServer, fake_llm: FakeOpenAI
) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is needed for the browser tests"
    env = {
        **os.environ,
        "LOOM_E2E_BASE_URL": ui_server.url,
        "LOOM_E2E_FAKE_URL": fake_llm.base_url.removesuffix("/v1"),
        "LOOM_E2E_CHROMIUM": CHROMIUM,
        "LOOM_E2E_TOKEN_BASE_URL": token_server.url,
        "LOOM_E2E_TOKEN": jwt.encode(
            {"sub": "token-user", "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256"
        ),
    }
    result = subprocess.run(
        [npm, "run", "--silent", "e2e"],
        cwd=FRONTEND,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stdout[-20000:])
    print(result.stderr[-5000:])
    assert result.returncode == 0, "browser tests failed (see the output above)"
