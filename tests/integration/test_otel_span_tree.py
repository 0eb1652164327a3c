"""OpenTelemetry: one HTTP submission to the SMTP send is one exported span tree (real stack, real SMTP).

Spans go to an in-process exporter; in production the OTEL_* variables choose the exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.notifications.bootstrap import build as build_notifications
from shared.platform import otel
from shared.platform.tracecontext import parse_traceparent

from .commitments.helpers import bpu_commitment, running
from .conftest import eventually
from .notifications import conftest as notifications
from .notifications.conftest import notif_settings

smtp_server = notifications.smtp_server  # the fixture, for this module's tests

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


@pytest.fixture
def exported():
    otel.shutdown()
    exporter = InMemorySpanExporter()
    otel.configure("tests", exporter=exporter)
    yield exporter
    otel.shutdown()


def test_tracing_is_off_unless_the_environment_asks(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert not otel.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert otel.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not otel.wanted()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not otel.wanted()


async def test_a_submission_and_the_email_it_causes_are_one_span_tree(topic_prefix, schema_for, smtp_server,
                                                                       exported):
    notifications, _ = build_notifications(notif_settings(topic_prefix, schema_for("not"), smtp_server.port))
    await notifications.start()
    try:
        async with running(topic_prefix, schema_for("com")) as svc:
            await svc.open("52.04")
            answer = await svc.submit("52.04", bpu_commitment())
            assert answer.status_code == 200, answer.text
            trace_id = parse_traceparent(answer.headers["traceparent"]).trace_id

            async def mailed():
                return [m for m in smtp_server.messages
                        if getattr(parse_traceparent(m["Traceparent"]), "trace_id", None) == trace_id]
            assert await eventually(mailed, timeout=30)
            await eventually(lambda: _has_send(exported, trace_id), timeout=10)
    finally:
        await notifications.stop()
    spans = [s for s in exported.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    by_id = {s.context.span_id: s for s in spans}
    send = next(s for s in spans if s.name == "send email")
    chain = []
    span = send
    while span is not None:
        chain.append(span.name)
        span = by_id.get(span.parent.span_id) if span.parent is not None else None
    assert chain == ["send email", "handle ntb.commitments.commitment.submitted.v1",
                     "create ntb.commitments.commitment.submitted.v1", "POST /commitments/{region_code}/submit"]
    root = by_id[next(iter(s.context.span_id for s in spans if s.name.startswith("POST")))]
    assert root.parent is None and root.attributes["http.response.status_code"] == 200
    assert {s.resource.attributes["service.name"] for s in spans} == {"tests"}
    print(f"\n[otel] {len(spans)} spans in the trace; chain {' <- '.join(chain)}")


async def _has_send(exporter, trace_id):
    return any(s.name == "send email" and format(s.context.trace_id, "032x") == trace_id
               for s in exporter.get_finished_spans())
