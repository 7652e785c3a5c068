"""Uploaded files: find out what they really are, then extract their text.

The content decides, not only the name: a file is identified by sniffing its bytes (``%PDF-``
magic; a zip archive holding ``word/document.xml`` for DOCX; valid UTF-8 without NUL bytes for
text, HTML when it has document tags). What the client declared (the extension, else a
specific part ``Content-Type``) must agree with what was sniffed, so a ``.pdf`` that is not a
PDF, or a PDF named ``.txt``, is refused (415), as is anything that is none of the supported
kinds. A file of the right kind that cannot be read (a corrupt PDF, broken DOCX XML, no text at
all) is refused with 422. Every refusal is a :class:`FileRejected` naming the file and why.

Everything here is synchronous and CPU-bound: callers run it in a worker thread.
"""

from __future__ import annotations

import codecs
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

from loom.tools._html import html_to_text

Kind = Literal["text", "markdown", "html", "pdf", "docx"]

MIME_TYPES: dict[Kind, str] = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_LABELS: dict[Kind, str] = {
    "text": "plain text",
    "markdown": "Markdown",
    "html": "HTML",
    "pdf": "a PDF",
    "docx": "a DOCX (Word) document",
}
_EXTENSIONS: dict[str, Kind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".txt": "text",
    ".text": "text",
}
_CONTENT_TYPES: dict[str, Kind] = {v: k for k, v in MIME_TYPES.items()} | {
    "application/xhtml+xml": "html",
    "text/x-markdown": "markdown",
}
_TEXTUAL: frozenset[Kind] = frozenset({"text", "markdown", "html"})
_HTML_TAGS = re.compile(rb"<(?:!doctype\s+html|html|head|body)[\s>/]", re.IGNORECASE)
_SNIFF_BYTES = 8192
# A DOCX's parts are zip members: refuse archives that would inflate past this many times the
# upload's own size (decompression bombs).
DOCX_MAX_INFLATION = 50


class FileRejected(Exception):
    """One uploaded file cannot be ingested; ``status`` is 413, 415 or 422."""

    def __init__(self, filename: str, status: int, reason: str) -> None:
        self.filename = filename
        self.status = status
        self.reason = reason
        super().__init__(f"{filename}: {reason}")


@dataclass
class Upload:
    """One received file: its (sanitised) name, declared type and a seekable binary file."""

    filename: str
    content_type: str | None
    file: IO[bytes]
    size: int


@dataclass(frozen=True)
class Section:
    """A piece of a document's text: the whole text, or one page of a PDF."""

    text: str
    page: int | None = None


def clean_filename(raw: str | None, index: int) -> str:
    """The base name of a client-sent file name (no folders, no control characters)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or f"upload-{index + 1}"


def declared_kind(filename: str, content_type: str | None) -> Kind | None:
    """What the client says the file is: by extension, else by a specific content type."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPES.get(mime)


def _read_all(file: IO[bytes]) -> bytes:
    file.seek(0)
    return file.read()


def _is_docx(file: IO[bytes]) -> bool:
    file.seek(0)
    if file.read(4) != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(file) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _decode_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError:
        return None


def sniff(file: IO[bytes]) -> Kind | None:
    """What the bytes are: ``pdf``, ``docx``, ``html``, ``text``, or ``None`` (unsupported)."""
    file.seek(0)
    head = file.read(_SNIFF_BYTES)
    if head.lstrip(b" \t\r\n\f\x00").startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "docx" if _is_docx(file) else None
    if _decode_text(_read_all(file)) is None:
        return None
    return "html" if _HTML_TAGS.search(head) else "text"


def identify(upload: Upload) -> Kind:
    """The kind to read ``upload`` as; raises :class:`FileRejected` (415) when unsupported."""
    declared = declared_kind(upload.filename, upload.content_type)
    found = sniff(upload.file)
    if found is None:
        if declared in ("pdf", "docx"):
            reason = f"the content is not {_LABELS[declared]}"
        elif declared is not None:
            reason = "the content is not valid UTF-8 text (binary data or another encoding)"
        else:
            reason = "unsupported file type (supported: text, Markdown, HTML, PDF, DOCX)"
        raise FileRejected(upload.filename, 415, reason)
    if declared is None:
        return found
    if declared in _TEXTUAL and found in _TEXTUAL:
        return declared  # the client's choice among the text kinds wins
    if declared == found:
        return found
    if declared in ("pdf", "docx"):
        reason = f"the content is not {_LABELS[declared]} (it is {_LABELS[found]})"
    else:
        reason = (
            f"the name or content type says {_LABELS[declared]} but the content is {_LABELS[found]}"
        )
    raise FileRejected(upload.filename, 415, reason)


def _pdf_sections(upload: Upload) -> list[Section]:
    from pypdf import PdfReader

    upload.file.seek(0)
    reader = PdfReader(upload.file)
    if reader.is_encrypted and not reader.decrypt(""):
        raise FileRejected(upload.filename, 422, "the PDF is encrypted")
    return [
        Section(text=page.extract_text() or "", page=number)
        for number, page in enumerate(reader.pages, start=1)
    ]


def _docx_blocks(upload: Upload) -> Iterator[str]:
    import docx
    from docx.table import Table

    upload.file.seek(0)
    with zipfile.ZipFile(upload.file) as archive:
        inflated = sum(info.file_size for info in archive.infolist())
    if inflated > DOCX_MAX_INFLATION * max(upload.size, 1):
        raise FileRejected(upload.filename, 422, "the DOCX inflates to an implausible size")
    upload.file.seek(0)
    document = docx.Document(upload.file)
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [cell.text.strip() for cell in row.cells]
                yield " | ".join(c for c in cells if c)
        else:
            yield block.text


def _text(upload: Upload) -> str:
    text = _decode_text(_read_all(upload.file))
    if text is None:  # identify() checked it; the file cannot have changed since
        raise FileRejected(upload.filename, 415, "the content is not valid UTF-8 text")
    return text


def extract(upload: Upload, kind: Kind) -> list[Section]:
    """The text of ``upload`` read as ``kind``; raises :class:`FileRejected` (422) on failure."""
    try:
        if kind == "pdf":
            sections = _pdf_sections(upload)
        elif kind == "docx":
            sections = [Section("\n".join(_docx_blocks(upload)))]
        elif kind == "html":
            title, body = html_to_text(_text(upload))
            sections = [Section(f"{title}\n\n{body}" if title and title not in body else body)]
        else:
            sections = [Section(_text(upload))]
    except FileRejected:
        raise
    except Exception as exc:  # parsers raise all sorts of errors on malformed input
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        reason = f"could not read the file as {_LABELS[kind]}"
        if detail:
            reason += f" ({type(exc).__name__}: {detail})"
        raise FileRejected(upload.filename, 422, reason) from exc
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        hint = " (a scanned PDF needs OCR, which Loom does not do)" if kind == "pdf" else ""
        raise FileRejected(upload.filename, 422, f"the file contains no text{hint}")
    return sections
