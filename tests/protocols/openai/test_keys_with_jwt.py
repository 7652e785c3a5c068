"""API keys in JWT mode: a key made with a token authenticates as the token's user on the
native API and ``/v1``, checked before any JWT parsing; ``/v1`` also takes the token itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import openai
import pytest

from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI

from .conftest import sdk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SECRET = "a-secret-long-enough-for-hs256-tokens-in-tests"


def _token(sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_loom(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    settings = make_settings(database_url, fake_llm, auth="jwt", jwt_secret=SECRET)
    with LoomServer(settings) as server:
        yield server


def test_keys_in_jwt_mode(jwt_loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    url = jwt_loom.url
    signed_in = {"Authorization": f"Bearer {_token('erin')}"}
    made = httpx.post(f"{url}/api-keys", headers=signed_in, json={"name": "ci"})
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    as_key = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/me", headers=as_key).json() == {"user_id": "erin"}

    client = sdk(jwt_loom, key)
    assistant = client.beta.assistants.create(model="gpt-4o-mini", name="Erin's")
    # The same user through a token, on both surfaces.
    by_token = sdk(jwt_loom, _token("erin"))
    assert [a.id for a in by_token.beta.assistants.list().data] == [assistant.id]
    native = httpx.get(f"{url}/assistants", headers=signed_in).json()
    assert [a["name"] for a in native] == ["Erin's"]

    # Another user's token sees nothing; a made-up key is not parsed as a JWT: plain 401.
    assert sdk(jwt_loom, _token("frank")).beta.assistants.list().data == []
    with pytest.raises(openai.AuthenticationError):
        sdk(jwt_loom, "loom_sk_forged").beta.assistants.list()
    # The development cookie is nothing in JWT mode.
    r = httpx.get(f"{url}/v1/assistants", cookies={"opengpts_user_id": "erin"})
    assert r.status_code == 401
