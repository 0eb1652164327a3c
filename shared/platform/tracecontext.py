"""W3C Trace Context (`traceparent`) and correlation ids: parsed strictly, carried in a contextvar.

An HTTP request or a consumed event sets the current `Trace`; every event written while it
is current carries its trace id (`ce_traceparent`, the CloudEvents distributed-tracing
extension) with a span id of its own, and its correlation and causation ids. The e-mails
and webhooks a delivery sends carry the same trace id, so one id follows a flow from the
first HTTP call to the last message.

Values from outside (HTTP headers, Kafka headers) are accepted only in their exact form;
anything else is dropped and a new trace started, so a hostile value never reaches a log
line, a header or an event.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from shared.platform import otel

# version-traceid-parentid-flags, lowercase hex (W3C Trace Context level 1, section 3.2).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# A future version may append fields after a dash; nothing this long is a real header.
MAX_TRACEPARENT = 512
# Correlation ids are event ids (UUIDs) or ids a caller chose: letters, digits and . _ : -
_CORRELATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceParent:
        """The start of a new trace (sampled)."""
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    def child(self) -> TraceParent:
        """The same trace, a new span (the next hop's parent)."""
        return TraceParent(self.trace_id, secrets.token_hex(8), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """A valid traceparent, or None (absent, malformed, version ff, all-zero ids)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    rest = value[match.end():]
    if version == "00" and rest:
        return None  # version 00 is exactly 55 characters
    if rest and not rest.startswith("-"):
        return None  # a later version's extra fields follow a dash
    # A later version is read as version 00: its trace id and span id have the same places.
    return TraceParent(trace_id, span_id, flags)


def valid_correlation_id(value: str | bytes | None) -> str | None:
    """The id if it is one this system would have made (1-128 of [A-Za-z0-9._:-]), else None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or _CORRELATION.fullmatch(value) is None:
        return None
    return value


@dataclass(frozen=True, slots=True)
class Trace:
    """What events written now inherit: the trace, the flow's correlation id, what caused them."""

    traceparent: TraceParent
    correlation_id: str | None = None
    causation_id: str | None = None


_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("ntb_trace", default=None)


def current() -> Trace | None:
    return _current.get()


@contextlib.contextmanager
def use(trace: Trace | None) -> Iterator[Trace | None]:
    """Make `trace` current inside the block."""
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


def current_traceparent() -> str | None:
    """The current trace's traceparent (the request's or the handled event's span), if any."""
    trace = _current.get()
    return trace.traceparent.header() if trace is not None else None


def for_event(traceparent: str | None = None, event_type: str | None = None) -> str:
    """The traceparent of an event written now: a new span of the current trace (or of a new one);
    with OpenTelemetry on, that span is exported ("create <type>")."""
    parent = parse_traceparent(traceparent) if traceparent else None
    if parent is None:
        trace = _current.get()
        parent = trace.traceparent if trace is not None else None
    if otel.enabled():  # checked first: this runs for every event written
        made = otel.instant(f"create {event_type or 'event'}", parent,
                            attributes={"messaging.system": "kafka", "cloudevents.event_type": event_type})
        if made is not None:
            return made.header()
    return (parent.child() if parent is not None else TraceParent.new()).header()


@contextlib.contextmanager
def starting(name: str) -> Iterator[Trace]:
    """A new trace for work nothing outside asked for (a durable timer firing); exported as `name`
    when OpenTelemetry is on. Events written inside start their chains' correlation ids themselves."""
    with otel.span(name, None, kind="internal") as made:
        trace = Trace(made.traceparent if made is not None else TraceParent.new())
        with use(trace):
            yield trace


@contextlib.contextmanager
def handling(traceparent: str | None, *, event_type: str | None, event_id: str | None,
             correlation_id: str | None) -> Iterator[Trace]:
    """The trace while a consumed event is handled: its own (a new one if it has none); with
    OpenTelemetry on, inside a "handle <type>" consumer span."""
    parent = parse_traceparent(traceparent)
    if not otel.enabled():  # the common case, per event: no span, one contextvar
        trace = Trace(parent or TraceParent.new(), correlation_id=correlation_id, causation_id=event_id)
        token = _current.set(trace)
        try:
            yield trace
        finally:
            _current.reset(token)
        return
    with otel.span(f"handle {event_type or 'event'}", parent, kind="consumer",
                   attributes={"messaging.system": "kafka", "cloudevents.event_id": event_id,
                               "cloudevents.event_type": event_type}) as made:
        current = made.traceparent if made is not None else (parent or TraceParent.new())
        trace = Trace(current, correlation_id=correlation_id, causation_id=event_id)
        with use(trace):
            yield trace
