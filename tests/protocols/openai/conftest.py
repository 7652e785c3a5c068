"""The official ``openai`` SDK pointed at a real Loom (``base_url=<loom>/v1``) with a Loom API
key; the model behind Loom is the fake OpenAI server."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI


def api_key(loom: LoomServer, user: str) -> str:
    r = loom.client(user).post("/api-keys", json={"name": f"{user}'s SDK key"})
    assert r.status_code == 200, r.text
    key = r.json()["key"]
    assert isinstance(key, str)
    return key


def sdk(loom: LoomServer, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{loom.url}/v1", api_key=key, max_retries=0, timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if not hasattr(client.beta, "assistants"):
            pytest.skip("this openai SDK no longer ships client.beta.assistants")
    return client


@pytest.fixture(scope="module")
def loom(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    with LoomServer(make_settings(database_url, fake_llm, tool_timeout_seconds=5.0)) as server:
        yield server


@pytest.fixture(scope="module")
def client_for(loom: LoomServer) -> Callable[[str], openai.OpenAI]:
    keys: dict[str, str] = {}

    def make(user: str) -> openai.OpenAI:
        if user not in keys:
            keys[user] = api_key(loom, user)
        return sdk(loom, keys[user])

    return make


@pytest.fixture(scope="module")
def client(client_for: Callable[[str], openai.OpenAI]) -> openai.OpenAI:
    return client_for("alice")
