"""W3C trace context and correlation ids: strict parsing, HTTP in and out, into the events written.

Requests are driven as raw ASGI calls, so header values can be any bytes (an HTTP client
would refuse to send most of the hostile ones). NTB_FUZZ_EXAMPLES=5000 runs longer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

import pytest
import structlog
from fastapi import Depends
from hypothesis import HealthCheck, given, settings, strategies as st
from structlog.testing import capture_logs

from shared.contracts.registry import registry
from shared.contracts.roles import Role
from shared.platform import http_telemetry, tracecontext
from shared.platform.auth import Principal, require
from shared.platform.envelope import CloudEvent, EnvelopeError, decode
from shared.platform.http import create_app
from shared.platform.logging import message_context
from shared.platform.outbox import Outbox

EXAMPLES = int(os.environ.get("NTB_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACEPARENT_OUT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
CORRELATION_OUT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SECRET = "s3cr3t-never-logged"


class _Keys:
    async def authenticate(self, token: str) -> Principal | None:
        if token == f"ntbk_k1_{SECRET}":
            return Principal("k1", "Operator", Role.REGION_OPERATOR, "52.01")
        return None


def _app():
    app = create_app("t", "test app")
    app.state.api_keys = _Keys()
    outbox = Outbox(registry, source="/test")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        return {"id": thing_id}

    @app.post("/regions/{region_code}/emit")
    async def emit(region_code: str, principal: Principal = Depends(require(Role.REGION_OPERATOR))) -> dict:
        import uuid
        from datetime import UTC, datetime

        from shared.contracts.notifications import DeliverySent
        payload = DeliverySent(delivery_id=uuid.uuid4(), recipient_id="r", channel="email", source_event_id="e",
                               source_event_type="t", attempts=1, at=datetime.now(UTC))
        event, _, _ = outbox.build(payload)
        return {"headers": {k: v.decode() for k, v in event.to_headers()}}

    return app


async def _call(app, path: str, headers: list[tuple[bytes, bytes]], method: str = "GET"):
    """One raw ASGI request; returns (status, headers as a list of pairs, body)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80)}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]], body


@contextlib.contextmanager
def access_lines():
    """The access log's lines. A logger made inside capture_logs: the module's own may be cached with
    whatever processors an earlier test configured."""
    with capture_logs() as logs:
        saved = http_telemetry.log
        http_telemetry.log = structlog.get_logger("shared.platform.http.access")
        try:
            yield logs
        finally:
            http_telemetry.log = saved


def _header(pairs, name):
    values = [v for k, v in pairs if k == name]
    assert len(values) == 1, (name, pairs)
    return values[0]


# --- parsing -----------------------------------------------------------------------------

def test_valid_traceparents_are_read_and_invalid_ones_refused():
    parsed = tracecontext.parse_traceparent(VALID)
    assert parsed == tracecontext.TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert parsed.header() == VALID
    # A later version may carry more fields after a dash; its first four are read.
    assert tracecontext.parse_traceparent("cc" + VALID[2:] + "-what-the-future-holds").trace_id == parsed.trace_id
    for bad in [VALID.upper(), VALID + "-x", "ff" + VALID[2:], "00-" + "0" * 32 + VALID[35:],
                VALID[:36] + "0" * 16 + "-01", VALID[:-1], " " + VALID, VALID + "\r\nX-Injected: 1",
                "cc" + VALID[2:] + "x", "", "00", "x" * 10000, b"\xff" + VALID.encode()]:
        assert tracecontext.parse_traceparent(bad) is None, bad


@FUZZ
@given(st.one_of(st.text(), st.binary(), st.from_regex(TRACEPARENT_OUT, fullmatch=True)))
def test_parsing_any_value_gives_a_valid_traceparent_or_none(value):
    parsed = tracecontext.parse_traceparent(value)
    if parsed is not None:
        assert TRACEPARENT_OUT.fullmatch(parsed.header())
        assert parsed.trace_id != "0" * 32 and parsed.span_id != "0" * 16


@FUZZ
@given(st.one_of(st.text(), st.binary()))
def test_correlation_ids_are_accepted_only_in_their_plain_form(value):
    accepted = tracecontext.valid_correlation_id(value)
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    assert accepted is None or (accepted == text and CORRELATION_OUT.fullmatch(accepted))


# --- HTTP in and out ---------------------------------------------------------------------

async def test_a_request_continues_the_callers_trace_and_returns_it():
    app = _app()
    status, headers, _ = await _call(app, "/things/1", [(b"traceparent", VALID.encode()),
                                                        (b"x-correlation-id", b"flow-42")])
    assert status == 200
    out = tracecontext.parse_traceparent(_header(headers, "traceparent"))
    assert out.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and out.span_id != "00f067aa0ba902b7"
    assert _header(headers, "x-correlation-id") == "flow-42"


async def test_without_trace_headers_a_request_starts_a_new_trace():
    status, headers, _ = await _call(_app(), "/things/1", [])
    assert status == 200
    assert TRACEPARENT_OUT.fullmatch(_header(headers, "traceparent"))
    assert CORRELATION_OUT.fullmatch(_header(headers, "x-correlation-id"))


HOSTILE = st.one_of(
    st.binary(max_size=600),
    st.sampled_from([VALID.encode() + b"\r\nSet-Cookie: x=1", b"flow\nforged: 1", b"\x00" * 60, "\u00e9".encode(),
                     b"a" * 129, VALID.upper().encode(), b"ff" + VALID[2:].encode()]),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(traceparents=st.lists(HOSTILE, max_size=3), correlations=st.lists(HOSTILE, max_size=3))
async def test_hostile_trace_headers_are_never_echoed(traceparents, correlations):
    """Any bytes, NUL, line breaks, duplicates: the answer and the log carry only values of the exact forms."""
    headers = [(b"traceparent", v) for v in traceparents] + [(b"x-correlation-id", v) for v in correlations]
    with access_lines() as logs:
        status, out, _ = await _call(_app(), "/things/1", headers)
    assert status == 200
    traceparent = _header(out, "traceparent")
    correlation = _header(out, "x-correlation-id")
    assert TRACEPARENT_OUT.fullmatch(traceparent) and CORRELATION_OUT.fullmatch(correlation)
    given_tp = tracecontext.parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
    if given_tp is not None:
        assert traceparent.split("-")[1] == given_tp.trace_id  # continued
    given_cid = tracecontext.valid_correlation_id(correlations[0]) if len(correlations) == 1 else None
    if given_cid is not None:
        assert correlation == given_cid
    else:
        assert correlation.encode() not in correlations
    line = next(e for e in logs if e["event"] == "http request")
    assert line["correlation_id"] == correlation and line["trace_id"] == traceparent.split("-")[1]


async def test_events_written_by_a_request_carry_its_trace_correlation_and_causation():
    app = _app()
    status, headers, body = await _call(app, "/regions/52.01/emit", [
        (b"traceparent", VALID.encode()), (b"x-correlation-id", b"flow-7"),
        (b"authorization", f"Bearer ntbk_k1_{SECRET}".encode())], method="POST")
    assert status == 200, body
    event = json.loads(body)["headers"]
    answered = tracecontext.parse_traceparent(_header(headers, "traceparent"))
    carried = tracecontext.parse_traceparent(event["ce_traceparent"])
    assert carried.trace_id == answered.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert carried.span_id != answered.span_id  # the event is a span of its own
    assert event["ce_correlationid"] == "flow-7"
    assert event["ce_causationid"] == answered.span_id  # caused by this request


async def test_access_log_names_route_key_role_region_never_the_secret_or_the_path():
    app = _app()
    with access_lines() as logs:
        await _call(app, "/regions/52.01/emit", [(b"authorization", f"Bearer ntbk_k1_{SECRET}".encode())],
                    method="POST")
        await _call(app, "/things/tok.123.abcdefghijklmnopqrstuvwxyz", [])
    lines = [e for e in logs if e["event"] == "http request"]
    assert lines[0]["route"] == "/regions/{region_code}/emit" and lines[0]["status"] == 200
    assert lines[0]["key_id"] == "k1" and lines[0]["role"] == "region_operator" and lines[0]["region_code"] == "52.01"
    assert lines[0]["method"] == "POST" and lines[0]["duration_ms"] >= 0
    assert lines[1]["route"] == "/things/{thing_id}" and "key_id" not in lines[1]
    assert SECRET not in repr(logs) and "abcdefghijklmnop" not in repr(logs)


async def test_red_metrics_per_route_template_with_bounded_labels():
    app = _app()
    await _call(app, "/things/1", [])
    await _call(app, "/things/2", [])
    await _call(app, "/nowhere/\u00e9vil", [])
    await _call(app, "/things/1", [], method="BREW")
    await _call(app, "/regions/52.01/emit", [], method="POST")  # no key: 401
    text = app.state.http_metrics.exposition().decode()
    assert 'http_requests_total{method="GET",route="/things/{thing_id}",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_requests_total{method="OTHER",route="/things/{thing_id}",status="405"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/regions/{region_code}/emit",status="401"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/things/{thing_id}"} 2.0' in text
    assert "vil" not in text


# --- events ------------------------------------------------------------------------------

def test_ce_traceparent_round_trips_and_a_malformed_one_is_dropped_not_fatal():
    event = CloudEvent.new(source="/t", type="t.v1", data=b"{}", traceparent=VALID)
    assert ("ce_traceparent", VALID.encode()) in event.to_headers()
    assert decode(event.data, event.to_headers()).traceparent == VALID
    bad = [(k, v) for k, v in event.to_headers() if k != "ce_traceparent"] + [("ce_traceparent", b"00-zz")]
    assert decode(event.data, bad).traceparent is None  # malformed but clean: dropped, tracing is advisory
    hostile = [*bad[:-1], ("ce_traceparent", b"00-zz\r\n")]
    with pytest.raises(EnvelopeError, match="control character"):  # a line break in any ce_ header: refused
        decode(event.data, hostile)
    structured = json.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t.v1", "data": {},
                             "traceparent": {"not": "a string"}}).encode()
    assert decode(structured, [("content-type", b"application/cloudevents+json")]).traceparent is None


@FUZZ
@given(st.binary(max_size=120))
def test_any_ce_traceparent_bytes_decode_to_a_valid_value_or_none(raw):
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t.v1"),
               ("content-type", b"application/json"), ("ce_traceparent", raw)]
    try:
        event = decode(b"{}", headers)
    except EnvelopeError:
        return  # not UTF-8: refused with a reason, as any header
    assert event.traceparent is None or TRACEPARENT_OUT.fullmatch(event.traceparent)


def test_events_written_while_handling_an_event_continue_its_trace():
    outbox = Outbox(registry, source="/t")
    import uuid
    from datetime import UTC, datetime

    from shared.contracts.notifications import DeliverySent
    payload = DeliverySent(delivery_id=uuid.uuid4(), recipient_id="r", channel="email", source_event_id="e",
                           source_event_type="t", attempts=1, at=datetime.now(UTC))
    with message_context(event_id="ev-1", correlation_id="corr-1", traceparent=VALID):
        event, _, _ = outbox.build(payload)
    assert event.traceparent.split("-")[1] == VALID.split("-")[1]
    assert event.correlation_id == "corr-1" and event.causation_id == "ev-1"
    alone, _, _ = outbox.build(payload)  # outside any trace: a new one, its own correlation
    assert alone.traceparent.split("-")[1] != VALID.split("-")[1] and alone.correlation_id == alone.id


def test_a_timer_firing_starts_one_trace_for_the_events_it_writes():
    outbox = Outbox(registry, source="/t")
    import uuid
    from datetime import UTC, datetime

    from shared.contracts.notifications import DeliverySent
    payload = DeliverySent(delivery_id=uuid.uuid4(), recipient_id="r", channel="email", source_event_id="e",
                           source_event_type="t", attempts=1, at=datetime.now(UTC))
    with tracecontext.starting("timer t") as trace:
        first, _, _ = outbox.build(payload)
        second, _, _ = outbox.build(payload)
    assert first.traceparent.split("-")[1] == second.traceparent.split("-")[1] == trace.traceparent.trace_id
    assert first.correlation_id == first.id and second.correlation_id == second.id  # each starts its chain
