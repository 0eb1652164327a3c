"""OpenTelemetry spans: off unless the standard OTEL_* variables ask for them.

Trace context travels without OpenTelemetry (shared.platform.tracecontext). With it, the same
places become exported spans, in the same traces:

    POST /commitments/{region_code}/submit        server    (shared.platform.http_telemetry)
      create ntb.commitments.commitment.submitted.v1       (an event written: its ce_traceparent)
        handle ntb.commitments.commitment.submitted.v1     consumer (the service that reads it)
          create ...                                       (the events that one writes)
          send email / send webhook                 client  (services.notifications.sender)

Enabled when OTEL_TRACES_EXPORTER is `otlp` or `console`, or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and OTEL_SDK_DISABLED
is not `true`. The exporter reads its own OTEL_EXPORTER_OTLP_* settings; OTEL_SERVICE_NAME
and OTEL_RESOURCE_ATTRIBUTES name the resource. One tracer provider per process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from shared.platform.tracecontext import TraceParent

log = structlog.stdlib.get_logger(__name__)  # not shared.platform.logging: that module imports this one

_tracer: Any = None
_provider: Any = None


def wanted() -> bool:
    """Whether the environment asks for spans (the SDK itself defaults to on: this project does not)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(service_name: str, *, exporter: Any = None) -> bool:
    """Set up the process's tracer once, when the environment asks for it or `exporter` is given
    (tests: an in-memory exporter, spans exported as each ends). Returns whether spans are on."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                                        or service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider
    _tracer = provider.get_tracer("ntb-rakor")
    log.info("OpenTelemetry tracing on", service_name=service_name)
    return True


def shutdown() -> None:
    """Flush and stop (a process that stops; tests that configured an exporter)."""
    global _tracer, _provider
    if _provider is not None:
        with contextlib.suppress(Exception):
            _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


class Span:
    """A started span and its W3C identity."""

    def __init__(self, span: Any, traceparent: TraceParent) -> None:
        self._span = span
        self.traceparent = traceparent

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def error(self, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode
        self._span.set_status(Status(StatusCode.ERROR, description))


def _context_of(parent: TraceParent | None) -> Any:
    if parent is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    remote = SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
                         trace_flags=TraceFlags(int(parent.flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _identity(span: Any) -> TraceParent:
    from shared.platform.tracecontext import TraceParent
    ctx = span.get_span_context()
    return TraceParent(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), format(int(ctx.trace_flags), "02x"))


_KINDS = {"server": "SERVER", "client": "CLIENT", "consumer": "CONSUMER", "producer": "PRODUCER",
          "internal": "INTERNAL"}


@contextlib.contextmanager
def span(name: str, parent: TraceParent | None, *, kind: str = "internal",
         attributes: dict[str, Any] | None = None) -> Iterator[Span | None]:
    """A span, child of `parent` (None: a new trace); None inside when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind
    with _tracer.start_as_current_span(name, context=_context_of(parent), kind=getattr(SpanKind, _KINDS[kind]),
                                       attributes={k: v for k, v in (attributes or {}).items() if v is not None},
                                       record_exception=True, set_status_on_exception=True) as current:
        yield Span(current, _identity(current))


def instant(name: str, parent: TraceParent | None, *, kind: str = "producer",
            attributes: dict[str, Any] | None = None) -> TraceParent | None:
    """A span that starts and ends now (an event written); its identity, or None when tracing is off."""
    if _tracer is None:
        return None
    with span(name, parent, kind=kind, attributes=attributes) as made:
        assert made is not None
        return made.traceparent
