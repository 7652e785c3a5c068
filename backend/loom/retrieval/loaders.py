"""Uploaded files: find out what they really are, then extract their text.

The content decides, not only the name: a file is identified by sniffing its bytes (``%PDF-``
magic; a zip archive holding ``word/document.xml`` for DOCX; valid UTF-8 without NUL bytes for
text, HTML when it has document tags). What the client declared (the extension, else a
specific part ``Content-Type``) must agree with what was sniffed, so a ``.pdf`` that is not a
PDF, or a PDF named ``.txt``, is refused (415), as is anything that is none of the supported
kinds. A file of the right kind that cannot be read (a corrupt PDF, broken DOCX XML, no text at
all) is refused with 422. Every refusal is a :class:`FileRejected` naming the file and why.

Parsing is bounded before it starts and while it runs (:class:`ParseLimits`): a DOCX by the
uncompressed size and number of its zip entries (read from the archive's directory, before
anything is inflated; reads never inflate past the sizes declared there), a PDF by its page
count (the page tree's ``/Count``, before any page is parsed), by pypdf's per-stream
decompression limits (lowered here) and by a deadline checked between pages and blocks.

Everything here is synchronous and CPU-bound: callers run it in a worker thread (the ingest's
bounded parse pool, :mod:`loom.retrieval.ingest`).
"""

from __future__ import annotations

import codecs
import os
import re
import time
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
# pypdf's own decompression caps (75 MB per stream by default), lowered: text extraction
# never needs a content stream this large.
PDF_STREAM_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost to read (the defaults are the settings' defaults)."""

    pdf_max_pages: int = 1000
    docx_max_bytes: int = 32 * 1024 * 1024  # uncompressed, all zip entries together
    docx_max_entries: int = 2000
    seconds: float | None = None  # how long reading may take
    deadline: float | None = None  # ``time.monotonic()`` by which it must be done

    def started(self) -> ParseLimits:
        """These limits with the deadline set from now."""
        if self.seconds is None or self.deadline is not None:
            return self
        return ParseLimits(
            self.pdf_max_pages,
            self.docx_max_bytes,
            self.docx_max_entries,
            self.seconds,
            time.monotonic() + self.seconds,
        )

    def check_time(self, filename: str) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FileRejected(filename, 422, too_slow(self.seconds or 0))


def too_slow(seconds: float) -> str:
    return f"reading the file took longer than {seconds:g} seconds"


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


def content_types() -> frozenset[str]:
    """The content types a file may declare to be taken (whatever its name)."""
    return frozenset(_CONTENT_TYPES)


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


def _declared_pages(reader: object) -> int | None:
    """The page count the PDF declares (its page tree's ``/Count``), read without parsing
    the pages; ``None`` when it has none readable."""
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[attr-defined]
        return int(count)
    except Exception:
        return None


def _pdf_sections(upload: Upload, limits: ParseLimits) -> list[Section]:
    import pypdf
    from pypdf import PdfReader

    # Scoped to this thread's context (pypdf keeps its configuration in a context variable).
    pypdf.overwrite_configuration(
        zlib_maximum_output_length=PDF_STREAM_MAX_BYTES,
        lzw_maximum_output_length=PDF_STREAM_MAX_BYTES,
        run_length_maximum_output_length=PDF_STREAM_MAX_BYTES,
        brotli_maximum_output_length=PDF_STREAM_MAX_BYTES,
        jbig2_maximum_output_length=PDF_STREAM_MAX_BYTES,
        array_based_stream_maximum_output_length=PDF_STREAM_MAX_BYTES,
        image_maximum_buffer_size=PDF_STREAM_MAX_BYTES,
        stream_decoding_work_maximum_length=4 * PDF_STREAM_MAX_BYTES,
        page_tree_maximum_entries=2 * limits.pdf_max_pages + 100,
    )
    upload.file.seek(0)
    reader = PdfReader(upload.file)
    if reader.is_encrypted and not reader.decrypt(""):
        raise FileRejected(upload.filename, 422, "the PDF is encrypted")
    declared = _declared_pages(reader)
    if declared is not None and declared > limits.pdf_max_pages:
        raise FileRejected(upload.filename, 413, _too_many_pages(declared, limits))
    sections: list[Section] = []
    for number, page in enumerate(reader.pages, start=1):
        if number > limits.pdf_max_pages:  # a /Count that lied
            raise FileRejected(upload.filename, 413, _too_many_pages(None, limits))
        limits.check_time(upload.filename)
        sections.append(Section(text=page.extract_text() or "", page=number))
    return sections


def _too_many_pages(pages: int | None, limits: ParseLimits) -> str:
    shown = f"{pages} pages" if pages is not None else "more pages than allowed"
    return f"the PDF has {shown} (the limit is {limits.pdf_max_pages})"


def check_docx(upload: Upload, limits: ParseLimits) -> None:
    """Refuse a DOCX whose archive has too many entries or would inflate too far (zip
    bombs), from the archive's directory alone: nothing is inflated."""
    upload.file.seek(0)
    with zipfile.ZipFile(upload.file) as archive:
        entries = archive.infolist()
    if len(entries) > limits.docx_max_entries:
        raise FileRejected(
            upload.filename,
            413,
            f"the DOCX has {len(entries)} parts (the limit is {limits.docx_max_entries})",
        )
    inflated = sum(info.file_size for info in entries)
    if inflated > limits.docx_max_bytes:
        raise FileRejected(
            upload.filename,
            413,
            f"the DOCX inflates to {inflated} bytes (the limit is {limits.docx_max_bytes})",
        )


def _docx_blocks(upload: Upload, limits: ParseLimits) -> Iterator[str]:
    import docx
    from docx.table import Table

    check_docx(upload, limits)
    upload.file.seek(0)
    # zipfile never inflates an entry past the size its directory declares (checked above).
    document = docx.Document(upload.file)
    for block in document.iter_inner_content():
        limits.check_time(upload.filename)
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


def extract(upload: Upload, kind: Kind, limits: ParseLimits | None = None) -> list[Section]:
    """The text of ``upload`` read as ``kind``; raises :class:`FileRejected` (422) on failure,
    413 when the file is over a :class:`ParseLimits` size."""
    limits = (limits or ParseLimits()).started()
    try:
        if kind == "pdf":
            sections = _pdf_sections(upload, limits)
        elif kind == "docx":
            sections = [Section("\n".join(_docx_blocks(upload, limits)))]
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
