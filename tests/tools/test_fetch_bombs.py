"""Decompression bombs: a small compressed body that inflates to 512 MiB costs at most the
fetch cap, whatever ``Content-Encoding`` chain carries it.

Each fetch runs in a fresh process (``tests.memprobe``) whose peak resident size is read from
the kernel; the figures are printed (``pytest -s``) and must stay under 100 MB of growth.
"""

from __future__ import annotations

import pytest

from loom.tools._http import decode_capped
from tests.fakes.tool_apis import FakeToolApis, bomb_body
from tests.memprobe import probe

CAP = 2 * 1024 * 1024  # the default fetch_max_bytes
BUDGET_MB = 100


@pytest.mark.parametrize("enc", ["zstd", "gzip", "gzip,gzip", "deflate", "gzip,zstd"])
def test_web_fetch_bomb_is_cut_at_the_cap(fake: FakeToolApis, enc: str) -> None:
    report = probe("fetch", f"{fake.base_url}/bomb?enc={enc}&mib=512", str(CAP))
    print(f"\nweb_fetch bomb {enc}: {report}")
    outcome = report["outcome"]
    shown = ", ".join(enc.split(","))
    assert outcome.startswith("success: "), outcome
    assert f"Note: the page was cut at {CAP} bytes (decoded from {shown})" in outcome
    assert report["growth_mb"] < BUDGET_MB, report


@pytest.mark.parametrize("enc", ["zstd", "gzip,gzip"])
def test_api_tool_bomb_is_an_error(fake: FakeToolApis, enc: str) -> None:
    report = probe("api", f"{fake.base_url}/bomb?enc={enc}&mib=512", str(CAP))
    print(f"\nAPI tool bomb {enc}: {report}")
    assert report["outcome"] == f"error: fake: the answer was larger than {CAP} bytes"
    assert report["growth_mb"] < BUDGET_MB, report


@pytest.mark.parametrize("enc", ["zstd", "gzip", "gzip,gzip", "deflate", "gzip,zstd"])
def test_decoding_is_exact_below_the_cap(enc: str) -> None:
    codings = enc.split(",")
    body = bomb_body(tuple(codings), 1)
    decoded, truncated = decode_capped(body, codings, 2 << 20)
    assert (decoded, truncated) == (b"a" * (1 << 20), False)
    decoded, truncated = decode_capped(body, codings, 1000)
    assert (decoded, truncated) == (b"a" * 1000, True)


def test_unknown_encoding_is_a_clear_error() -> None:
    from langchain_core.tools import ToolException

    with pytest.raises(ToolException, match="unsupported Content-Encoding: br"):
        decode_capped(b"xx", ["br"], 100)
