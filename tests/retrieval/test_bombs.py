"""Uploads that would cost far more to read than their size: refused before parsing, with
the process's peak memory growing by less than 100 MB; parsing has a time limit; an ingest
holds no pooled connection while the embeddings provider works.

Peak memory is measured in a fresh process (``tests.memprobe``: the kernel's high-water mark)
running the parse pool's own function; the figures are printed (``pytest -s``).
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from loom.retrieval.ingest import CheckedFile, chunk_file
from loom.retrieval.loaders import FileRejected, ParseLimits, Upload
from tests.conftest import LoomServer, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.memprobe import probe
from tests.runs.helpers import CHATBOT, create_assistant

from .helpers import count, ingest, make_docx, make_pdf, wait_job

BUDGET_MB = 100
PARAGRAPH = b"<w:p><w:r><w:t>The heron waits at the water's edge.</w:t></w:r></w:p>"


def docx_bomb(xml_mib: int = 64) -> bytes:
    """A real DOCX whose document.xml inflates to ``xml_mib`` MiB of paragraphs, padded with
    incompressible bytes so that it inflates less than 50 times its own size (what the landed
    check allowed)."""
    source = zipfile.ZipFile(io.BytesIO(make_docx(["start"])))
    document = source.read("word/document.xml")
    head, tail = document.split(b"<w:body>", 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                bomb.writestr(info, source.read(info.filename))
        with bomb.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(head + b"<w:body>")
            block = PARAGRAPH * (1024 * 1024 // len(PARAGRAPH))
            for _ in range(xml_mib):
                part.write(block)
            part.write(tail)
        padding = (xml_mib << 20) // 45
        bomb.writestr(
            zipfile.ZipInfo("word/media/noise.bin"), os.urandom(padding), zipfile.ZIP_STORED
        )
    return out.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    made = {
        "bomb.docx": docx_bomb(),
        "pages.pdf": make_pdf([f"Page {i} of a very long report." for i in range(5000)]),
    }
    paths = {}
    for name, data in made.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def test_docx_bomb_is_refused_before_parsing(files: dict[str, Path]) -> None:
    data = files["bomb.docx"].read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        inflated = sum(i.file_size for i in archive.infolist())
    assert inflated < 50 * len(data)  # what the landed check let through
    report = probe("parse", str(files["bomb.docx"]), "bomb.docx")
    print(f"\nDOCX bomb ({len(data)} bytes, inflating to {inflated}): {report}")
    assert report["outcome"] == (
        f"rejected 413: the DOCX inflates to {inflated} bytes (the limit is {32 * 1024 * 1024})"
    )
    assert report["growth_mb"] < BUDGET_MB, report


def test_docx_with_too_many_parts_is_refused() -> None:
    source = zipfile.ZipFile(io.BytesIO(make_docx(["hello"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info.filename))
        for i in range(30):
            archive.writestr(f"loom-extra/part{i}.xml", b"<a/>")
    data = out.getvalue()
    upload = Upload("parts.docx", None, io.BytesIO(data), len(data))
    with pytest.raises(FileRejected) as caught:
        chunk_file(
            CheckedFile(upload, "docx"),
            make_settings("postgresql://unused"),
            ParseLimits(docx_max_entries=20),
        )
    assert (caught.value.status, caught.value.reason) == (
        413,
        f"the DOCX has {len(source.infolist()) + 30} parts (the limit is 20)",
    )


def test_5000_page_pdf_is_refused_before_parsing(files: dict[str, Path]) -> None:
    report = probe("parse", str(files["pages.pdf"]), "pages.pdf")
    size = files["pages.pdf"].stat().st_size
    print(f"\n5,000-page PDF ({size} bytes): {report}")
    assert report["outcome"] == "rejected 413: the PDF has 5000 pages (the limit is 1000)"
    assert report["growth_mb"] < BUDGET_MB, report


def test_a_pdf_whose_page_count_lies_is_stopped_at_the_limit() -> None:
    data = make_pdf([f"page {i}" for i in range(30)]).replace(b"/Count 30", b"/Count 3 ")
    upload = Upload("liar.pdf", None, io.BytesIO(data), len(data))
    with pytest.raises(FileRejected) as caught:
        chunk_file(
            CheckedFile(upload, "pdf"),
            make_settings("postgresql://unused"),
            ParseLimits(pdf_max_pages=10),
        )
    assert (caught.value.status, caught.value.reason) == (
        413,
        "the PDF has more pages than allowed (the limit is 10)",
    )


def test_parsing_stops_at_its_time_limit() -> None:
    data = make_pdf([f"Page {i}: " + "words " * 200 for i in range(400)])
    upload = Upload("slow.pdf", None, io.BytesIO(data), len(data))
    started = time.monotonic()
    with pytest.raises(FileRejected) as caught:
        chunk_file(
            CheckedFile(upload, "pdf"),
            make_settings("postgresql://unused"),
            ParseLimits(seconds=0.05),
        )
    assert (caught.value.status, caught.value.reason) == (
        422,
        "reading the file took longer than 0.05 seconds",
    )
    # stopped between pages, long before the whole file was read
    assert time.monotonic() - started < 30


# --- through the server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str, fake_llm: FakeOpenAI) -> Iterator[LoomServer]:
    # Two pooled connections: ingests waiting on embeddings must leave them to others.
    settings = make_settings(database_url, fake_llm, db_pool_min=1, db_pool_max=2)
    with LoomServer(settings) as loom:
        yield loom


def test_bombs_answer_413_and_store_nothing(
    server: LoomServer, files: dict[str, Path], database_url: str
) -> None:
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    ok = ("ok.txt", b"A small and honest file about herons.\n")
    for name in ("bomb.docx", "pages.pdf"):
        r = ingest(client, [ok, (name, files[name].read_bytes())], assistant_id=assistant_id)
        assert r.status_code == 413, r.text
        detail = r.json()["detail"]
        assert detail.startswith(f"{name}: the ")
        assert "(the limit is " in detail
    assert count(database_url, f"assistant:{assistant_id}") == 0


def test_ingests_waiting_on_embeddings_hold_no_connection(
    server: LoomServer, fake_llm: FakeOpenAI, database_url: str
) -> None:
    client = server.client("alice")
    assistant_id = create_assistant(client, CHATBOT)
    gate = fake_llm.hold_embeddings()
    try:
        jobs = []
        for i in range(4):  # more ingests than pooled connections
            text = f"File {i} tells of herons and the patience of fishing birds.\n".encode()
            r = ingest(
                client, [(f"f{i}.txt", text)], assistant_id=assistant_id, params={"async": "true"}
            )
            assert r.status_code == 202, r.text
            jobs.append(r.json()["job_id"])
        deadline = time.monotonic() + 30
        while fake_llm.embeddings_waiting < 4:
            assert time.monotonic() < deadline, "the ingests did not all reach the embeddings"
            time.sleep(0.02)
        # Every ingest is waiting on the provider; the rest of the API still answers at once.
        for _ in range(5):
            r = client.get("/threads", timeout=10)
            assert r.status_code == 200
            r = client.get(f"/ingest/{jobs[0]}", timeout=10)
            assert r.json()["status"] == "running"
    except requests.Timeout as exc:
        raise AssertionError("a request waited for a pooled connection") from exc
    finally:
        gate.set()
    for job_id in jobs:
        assert wait_job(client, job_id)["status"] == "done"
    assert count(database_url, f"assistant:{assistant_id}") == 4
    with psycopg.connect(database_url) as conn:
        staged = conn.execute("SELECT count(*) FROM document_staging").fetchone()
    assert staged == (0,)
