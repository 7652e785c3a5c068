"""Identifying uploads by their content and extracting their text (no database needed)."""

from __future__ import annotations

import io
import zipfile

import pytest

from loom.retrieval.ingest import CheckedFile, chunk_file
from loom.retrieval.loaders import FileRejected, Upload, clean_filename, extract, identify
from loom.settings import Settings

from .helpers import make_docx, make_pdf


def upload(name: str, data: bytes, content_type: str | None = None) -> Upload:
    return Upload(name, content_type, io.BytesIO(data), len(data))


def settings(**extra: object) -> Settings:
    return Settings(database_url="postgresql://unused", **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "data", "content_type", "kind"),
    [
        ("a.pdf", make_pdf(["hello"]), None, "pdf"),
        ("noext", make_pdf(["hello"]), None, "pdf"),
        ("a.docx", make_docx(["hello"]), None, "docx"),
        ("upload", make_docx(["hello"]), "application/octet-stream", "docx"),
        ("a.html", b"<p>hi</p>", None, "html"),
        ("page", b"<!DOCTYPE html><html><body>hi</body></html>", None, "html"),
        ("a.md", b"# Title\n\nSome <br> inline html", None, "markdown"),
        ("notes", b"# Title", "text/markdown", "markdown"),
        ("a.txt", "caf\u00e9 \u2603".encode(), None, "text"),
        ("a.txt", b"\xef\xbb\xbfwith a BOM", None, "text"),
        ("data.csv", b"a,b\n1,2\n", None, "text"),
        ("a.txt", b"<html><body>kept as text</body></html>", None, "text"),
        ("a.md", b"Discussing the %PDF-1.7 header", None, "markdown"),
    ],
)
def test_identify(name: str, data: bytes, content_type: str | None, kind: str) -> None:
    assert identify(upload(name, data, content_type)) == kind


def _zip_without_document() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "content_type", "says"),
    [
        ("bad.pdf", b"this is not a pdf at all", None, "not a PDF"),
        ("bad.docx", b"not a zip", None, "not a DOCX"),
        ("bad.docx", b"PK\x03\x04broken zip", None, "not a DOCX"),
        ("junk.txt", bytes(range(256)) * 4, None, "not valid UTF-8"),
        ("nul.txt", b"text\x00with a NUL", None, "not valid UTF-8"),
        ("latin1.md", "caf\u00e9".encode("latin-1"), None, "not valid UTF-8"),
        ("report.txt", make_pdf(["x"]), None, "the content is a PDF"),
        ("doc.pdf", make_docx(["x"]), None, "not a PDF (it is a DOCX"),
        ("x.html", make_pdf(["x"]), None, "the content is a PDF"),
        ("blob", make_pdf(["x"]), "text/plain", "the content is a PDF"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00", None, "unsupported file type"),
        ("book.xlsx", _zip_without_document(), None, "unsupported file type"),
    ],
)
def test_refused_types(name: str, data: bytes, content_type: str | None, says: str) -> None:
    with pytest.raises(FileRejected) as caught:
        identify(upload(name, data, content_type))
    assert caught.value.status == 415
    assert caught.value.filename == name
    assert says in caught.value.reason
    assert str(caught.value).startswith(f"{name}: ")


def test_extract_pdf_pages() -> None:
    sections = extract(upload("a.pdf", make_pdf(["first page", "", "third page"])), "pdf")
    assert [(s.page, s.text.strip()) for s in sections] == [(1, "first page"), (3, "third page")]


def test_extract_docx_keeps_order_and_tables() -> None:
    data = make_docx(["Intro paragraph."], table=[["Name", "Age"], ["Ada", "36"]])
    [section] = extract(upload("a.docx", data), "docx")
    assert section.text.splitlines() == ["Intro paragraph.", "Name | Age", "Ada | 36"]


def test_extract_html_drops_scripts() -> None:
    html = (
        b"<html><head><title>Zoo</title><script>var secret = 1;</script></head>"
        b"<body><h1>Giraffes</h1><p>Giraffes are tall.</p></body></html>"
    )
    [section] = extract(upload("a.html", html), "html")
    assert "Giraffes are tall." in section.text
    assert "Zoo" in section.text
    assert "secret" not in section.text


@pytest.mark.parametrize(
    ("name", "data", "kind", "says"),
    [
        ("corrupt.pdf", b"%PDF-1.4\nnot really a pdf", "pdf", "could not read the file as a PDF"),
        ("empty.pdf", make_pdf([""]), "pdf", "contains no text"),
        ("blank.txt", b"  \n\n ", "text", "contains no text"),
    ],
)
def test_unreadable_files(name: str, data: bytes, kind: str, says: str) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(upload(name, data), kind)  # type: ignore[arg-type]
    assert caught.value.status == 422
    assert says in caught.value.reason


def test_broken_docx_xml() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<not-closed")
    data = buffer.getvalue()
    item = upload("broken.docx", data)
    assert identify(item) == "docx"
    with pytest.raises(FileRejected) as caught:
        extract(item, "docx")
    assert caught.value.status == 422
    assert "could not read the file as a DOCX" in caught.value.reason


def test_chunking_metadata_and_overlap() -> None:
    words = [f"word{i}" for i in range(600)]
    text = " ".join(words).encode()
    chunks = chunk_file(
        CheckedFile(upload("long.txt", text), "text"), settings(chunk_size=500, chunk_overlap=100)
    )
    assert len(chunks) > 3
    assert all(len(c.text) <= 500 for c in chunks)
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0].metadata == {
        "source": "long.txt",
        "filename": "long.txt",
        "content_type": "text/plain",
        "chunk": 0,
    }
    # consecutive chunks overlap
    assert chunks[0].text.split()[-1] in chunks[1].text.split()[:30]


def test_clean_filename() -> None:
    assert clean_filename("../../etc/passwd", 0) == "passwd"
    assert clean_filename("C:\\Users\\me\\report.pdf", 0) == "report.pdf"
    assert clean_filename("bad\x00\x07name.txt", 0) == "badname.txt"
    assert clean_filename(None, 2) == "upload-3"
    assert clean_filename("", 0) == "upload-1"
