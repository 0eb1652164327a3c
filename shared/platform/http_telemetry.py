"""What every HTTP request leaves behind: trace context, an access log line, RED metrics.

One ASGI middleware, outermost (it sees the 413s and 500s the layers inside produce):

- Trace context. A valid W3C `traceparent` continues the caller's trace; anything else
  starts a new one. A valid `X-Correlation-ID` names the flow; otherwise a new UUID does.
  Both are made current (shared.platform.tracecontext) so every event the request writes carries
  them, with the request's span id as the events' causation id, and both come back on
  the response (`traceparent` with this request's span, `X-Correlation-ID`).
- An access log line: method, route template (never the raw path: RSVP links carry
  tokens), status, duration, the API key's id and role, the region, trace and
  correlation ids. Never the Authorization header or the query string.
- `http_requests_total{method,route,status}` and
  `http_request_duration_seconds{method,route}`. Label values are bounded: a path no
  route matches is `route="unmatched"`, an unusual method `method="OTHER"`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shared.contracts.regions import regions
from shared.platform import otel, tracecontext
from shared.platform.logging import get_logger

log = get_logger("shared.platform.http.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes arrive every few seconds: counted, but logged only when they fail.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
CORRELATION_HEADER = b"x-correlation-id"
TRACEPARENT_HEADER = b"traceparent"


class HttpMetrics:
    """RED metrics of one app, in a registry of its own (the service's /metrics appends it)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "Time from receiving a request to its last response byte",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _one_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The header's value if it is sent exactly once (two values of a trace header: neither is trusted)."""
    values = [value for key, value in headers if key.lower() == name]
    return values[0] if len(values) == 1 else None


def incoming_trace(headers: list[tuple[bytes, bytes]]) -> tuple[tracecontext.TraceParent | None, str]:
    """The caller's span if it sent a valid one, and the correlation id (the caller's, or a new one)."""
    parent = tracecontext.parse_traceparent(_one_header(headers, TRACEPARENT_HEADER))
    correlation = tracecontext.valid_correlation_id(_one_header(headers, CORRELATION_HEADER)) or str(uuid.uuid4())
    return parent, correlation


class HttpTelemetry:
    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        parent, correlation = incoming_trace(list(scope.get("headers") or []))
        with otel.span("HTTP", parent, kind="server") as exported:
            # This request's span: the exported one, or a new span of the caller's trace (or a new trace).
            span = exported.traceparent if exported is not None else (
                parent.child() if parent is not None else tracecontext.TraceParent.new())
            await self._traced(scope, receive, send, started, span, correlation, exported)

    async def _traced(self, scope: dict[str, Any], receive: Any, send: Any, started: float, span: tracecontext.TraceParent,
                      correlation: str, exported: otel.Span | None) -> None:
        scope.setdefault("state", {})  # shared with Request.state: auth leaves the principal there
        status = 500
        extra = [(b"traceparent", span.header().encode()), (b"x-correlation-id", correlation.encode())]

        async def send_with_trace(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        trace = tracecontext.Trace(span, correlation_id=correlation, causation_id=span.span_id)
        try:
            with tracecontext.use(trace), structlog.contextvars.bound_contextvars(trace_id=span.trace_id,
                                                                                   correlation_id=correlation):
                await self.app(scope, receive, send_with_trace)
        finally:
            self._record(scope, status, time.perf_counter() - started, span, correlation, exported)

    def _record(self, scope: dict[str, Any], status: int, seconds: float, span: tracecontext.TraceParent,
                correlation: str, exported: otel.Span | None) -> None:
        method = scope.get("method", "")
        method = method if method in METHODS else "OTHER"
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"
        if exported is not None:
            exported.rename(f"{method} {route}")
            exported.set("http.request.method", method)
            exported.set("http.route", route)
            exported.set("http.response.status_code", status)
            exported.set("ntb.correlation_id", correlation)
            if status >= 500:
                exported.error(f"HTTP {status}")
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.duration.labels(method, route).observe(seconds)
        if route in QUIET_ROUTES and status < 400:
            return
        principal = (scope.get("state") or {}).get("principal")
        region = getattr(principal, "region_code", None) or (scope.get("path_params") or {}).get("region_code")
        role = getattr(principal, "role", None)
        fields = dict(method=method, route=route, status=status, duration_ms=round(seconds * 1000, 2),
                      key_id=getattr(principal, "key_id", None), role=getattr(role, "value", role),
                      region_code=region if isinstance(region, str) and region in regions() else None,
                      trace_id=span.trace_id, span_id=span.span_id, correlation_id=correlation)
        (log.warning if status >= 500 else log.info)("http request", **{k: v for k, v in fields.items()
                                                                        if v is not None})


def instrument(app: Any) -> HttpMetrics:
    """Add the middleware to a FastAPI app; its metrics are kept on `app.state.http_metrics`."""
    metrics = HttpMetrics()
    app.state.http_metrics = metrics
    app.add_middleware(HttpTelemetry, metrics=metrics)
    return metrics
