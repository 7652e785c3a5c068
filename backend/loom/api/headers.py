"""Security headers on every HTTP response: the UI, its assets, the API and SSE streams.

A pure ASGI middleware: it adds headers to ``http.response.start`` and passes every body
message through untouched, so a stream is sent exactly as it is written.

- ``Content-Security-Policy``: scripts, styles, fonts and connections from Loom's own origin
  only (no inline script or style, no ``eval``); images from the origin and ``data:`` URLs
  only, so a remote image in a model's reply cannot be loaded (the UI shows it as a link); no
  plugins, no ``<base>`` change, forms post to the origin only, and no page may frame Loom
  (``frame-ancestors 'none'``). The interactive API reference (``/docs``, ``/redoc``) is a
  page FastAPI builds with an inline script and assets from a CDN: it gets a policy of its own
  that allows them (and is not framable either).
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers without CSP 2),
  ``Referrer-Policy: no-referrer`` (a link in a reply never tells the site which chat it was
  in).
- ``Strict-Transport-Security`` when the request came over TLS: its scheme is ``https``, which
  includes a proxy's ``X-Forwarded-Proto: https`` when uvicorn trusts that proxy
  (``LOOM_FORWARDED_ALLOW_IPS``). Never over plain HTTP, where browsers ignore it anyway.

A header the response set itself is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# FastAPI's Swagger UI and ReDoc pages: an inline bootstrap script, assets from jsDelivr,
# FastAPI's favicon; they show the API's schema, never model output.
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)

Header = tuple[bytes, bytes]


def _encode(pairs: Iterable[tuple[str, str]]) -> list[Header]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


class SecurityHeaders:
    """Adds the headers above; ``docs_paths`` get :data:`DOCS_POLICY` instead of the UI's."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        common = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]
        self._plain = _encode([("Content-Security-Policy", UI_POLICY), *common])
        self._docs = _encode([("Content-Security-Policy", DOCS_POLICY), *common])
        self._hsts = _encode(
            [("Strict-Transport-Security", f"max-age={hsts_seconds}")] if hsts_seconds else []
        )
        self._docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._docs if scope.get("path") in self._docs_paths else self._plain
        if scope.get("scheme") == "https":
            extra = extra + self._hsts

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Header] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
