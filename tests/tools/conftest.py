from __future__ import annotations

from collections.abc import Iterator

import pytest

from loom.settings import Settings
from loom.tools.registry import ToolRegistry, default_tool_registry
from tests.fakes.tool_apis import FakeToolApis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeToolApis]:
    with FakeToolApis() as server:
        yield server


@pytest.fixture
def settings(fake: FakeToolApis) -> Settings:
    fake.reset()
    return fake.settings()


@pytest.fixture
def registry() -> ToolRegistry:
    return default_tool_registry()
