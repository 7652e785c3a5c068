"""Optional OpenTelemetry traces: off unless ``LOOM_OTEL_EXPORTER`` names an exporter.

``otlp`` sends spans over OTLP/HTTP (to ``LOOM_OTEL_ENDPOINT``, else the SDK's default and its
``OTEL_EXPORTER_OTLP_*`` variables); ``console`` prints them (for a look). Both need the
``otel`` extra (``pip install 'loom[otel]'``). Spans: one per HTTP request (``loom.api``) and
one per run execution (``loom.run``, with its run, thread and user ids and its status).

The tracer provider is Loom's own (made by :func:`open_tracing` in the runtime, shut down with
it), never installed as the process-wide global one. Off, :class:`Tracing` hands out no-op
spans and costs a function call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from loom.settings import Settings


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN = _NoSpan()


class Tracing:
    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self.provider = provider

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A span around the block (a no-op one when tracing is off)."""
        if self._tracer is None:
            yield _NO_SPAN
            return
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def open_tracing(settings: Settings) -> Tracing:
    if settings.otel_exporter == "none":
        return Tracing()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            "LOOM_OTEL_EXPORTER needs the otel extra: pip install 'loom[otel]'"
        ) from exc
    exporter: Any
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint)
    else:
        exporter = ConsoleSpanExporter()
    resource = Resource.create({"service.name": settings.otel_service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer("loom"), provider)
