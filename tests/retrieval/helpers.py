"""Small builders shared by the retrieval tests: files of each kind, ingest calls, row counts."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import docx
import psycopg
import requests


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF (Helvetica text, one content stream per page), written by hand."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
            + f"] /Count {len(pages)} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
                f" /Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
            ).encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(stream), stream))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%b\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


FileSpec = tuple[str, bytes] | tuple[str, bytes, str]


def ingest(
    client: requests.Session,
    files: list[FileSpec],
    *,
    assistant_id: str | None = None,
    thread_id: str | None = None,
    params: dict[str, str] | None = None,
) -> requests.Response:
    configurable: dict[str, str] = {}
    if assistant_id:
        configurable["assistant_id"] = assistant_id
    if thread_id:
        configurable["thread_id"] = thread_id
    return client.post(
        "/ingest",
        files=[("files", spec) for spec in files],
        data={"config": json.dumps({"configurable": configurable})},
        params=params,
    )


def rows(database_url: str, namespace: str) -> list[dict[str, Any]]:
    """The stored chunks of a namespace, in file then chunk order."""
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT id, content, metadata, vector_dims(embedding) AS dims FROM document"
            " WHERE namespace = %s ORDER BY metadata->>'filename', (metadata->>'chunk')::int",
            (namespace,),
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def count(database_url: str, namespace: str | None = None) -> int:
    with psycopg.connect(database_url) as conn:
        if namespace is None:
            cur = conn.execute("SELECT count(*) FROM document")
        else:
            cur = conn.execute("SELECT count(*) FROM document WHERE namespace = %s", (namespace,))
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def wait_job(client: requests.Session, job_id: str, polls: int = 500) -> dict[str, Any]:
    for _ in range(polls):
        r = client.get(f"/ingest/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("done", "error"):
            assert isinstance(job, dict)
            return job
        time.sleep(0.02)
    raise AssertionError(f"ingest job {job_id} did not finish")
