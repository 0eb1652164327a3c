"""Operators resend failed deliveries; the event's trace reaches the e-mail and the webhook (real stack, real SMTP)."""

from __future__ import annotations

import json

import pytest

from services.notifications import domain
from services.notifications.bootstrap import build
from shared.contracts.notifications import Channel
from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS, INVITATIONS_EVENTS, NOTIFICATIONS_EVENTS
from shared.platform.envelope import CloudEvent
from shared.platform.tracecontext import parse_traceparent

from ..conftest import eventually, http_client, issue_key, read_topic
from . import factories
from .conftest import event_of, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def traced(event: CloudEvent) -> CloudEvent:
    return CloudEvent.new(source=event.source, type=event.type, data=event.data, id=event.id,
                          correlation_id=event.correlation_id, traceparent=PARENT)


async def test_the_events_trace_reaches_the_email_the_webhook_and_the_status_event(
        topic_prefix, schema_for, db, smtp_server, webhook_listener):
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        event = traced(event_of(factories.invitation(webhook_url=webhook_listener.url())))
        await publish(topic_prefix + INVITATIONS_EVENTS, [event])
        await eventually(lambda: db.fetchval(f'SELECT count(*) = 2 FROM "{schema}".deliveries WHERE status = \'sent\''))
        [msg] = smtp_server.handler.to("sekda@dompukab.go.id")
        sent_trace = parse_traceparent(msg["Traceparent"])
        assert sent_trace.trace_id == TRACE and sent_trace.span_id != "00f067aa0ba902b7"
        assert msg["X-Correlation-ID"] == event.correlation_id
        [hook] = webhook_listener.received
        assert parse_traceparent(hook["headers"]["traceparent"]).trace_id == TRACE
        assert hook["headers"]["x-correlation-id"] == event.correlation_id
        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=2)
        for record in records:
            assert parse_traceparent(dict(record.headers)["ce_traceparent"].decode()).trace_id == TRACE
    finally:
        await rt.stop()


async def test_failed_delivery_is_resent_with_the_same_message_id_audited_and_never_twice(
        topic_prefix, schema_for, db, stopped_smtp_server):
    """SMTP down until retries run out: failed. Server back, operator resends the event's failures: sent once."""
    schema = schema_for("not")
    rt, app = build(notif_settings(topic_prefix, schema, stopped_smtp_server.port, delivery_max_attempts=2))
    await rt.start()
    try:
        operator = await issue_key(rt, Role.OPERATOR)
        organizer = await issue_key(rt, Role.ORGANIZER)
        auth = {"Authorization": f"Bearer {operator}"}
        payload = factories.invitation()
        event = event_of(payload)
        await publish(topic_prefix + INVITATIONS_EVENTS, [event])
        table = f'"{schema}".deliveries'
        failed = await eventually(lambda: db.fetchrow(f"SELECT * FROM {table} WHERE status = 'failed'"), timeout=30)
        expected_id = domain.delivery_id(event.id, f"invitee:{payload.invitation_id}", Channel.EMAIL)
        assert failed["delivery_id"] == expected_id
        stopped_smtp_server.start()
        async with http_client(app, rt) as client:
            refused = await client.post("/deliveries/resend", params={"event_id": event.id},
                                        headers={"Authorization": f"Bearer {organizer}"})
            assert refused.status_code == 403
            assert (await client.post("/deliveries/resend", params={"event_id": "no-such-event"},
                                      headers=auth)).status_code == 404
            assert (await client.post(f"/deliveries/{expected_id.hex[:8]}-0000-0000-0000-000000000000/resend",
                                      headers=auth)).status_code == 404
            r = await client.post("/deliveries/resend", params={"event_id": event.id}, headers=auth)
            assert r.status_code == 200, r.text
            assert r.json() == {"event_id": event.id, "resent": [str(expected_id)], "refused": []}
            await eventually(lambda: db.fetchval(f"SELECT status = 'sent' FROM {table}"), timeout=20)
            [msg] = stopped_smtp_server.handler.to("sekda@dompukab.go.id")
            assert msg["Message-ID"] == f"<{expected_id}@notifications.ntb-rakor>"
            row = await db.fetchrow(f"SELECT * FROM {table}")
            assert row["attempts"] == 1 and row["resends"] == 1 and row["reason"] is None

            again = await client.post(f"/deliveries/{expected_id}/resend", headers=auth)
            assert again.status_code == 409 and "already sent" in again.json()["detail"]
            again = await client.post("/deliveries/resend", params={"event_id": event.id}, headers=auth)
            assert again.status_code == 409
            trail = (await client.get(f"/deliveries/{expected_id}/audit", headers=auth)).json()
            assert len(trail) == 1
            assert trail[0]["actor"] == operator.split("_")[1] and trail[0]["actor_role"] == "operator"
            assert (trail[0]["action"], trail[0]["from_status"], trail[0]["to_status"]) == ("resend", "failed",
                                                                                             "pending")
            assert trail[0]["attempts_before"] == 2 and "gave up" in trail[0]["reason_before"]
            view = (await client.get(f"/deliveries/{expected_id}", headers=auth)).json()
            assert view["status"] == "sent" and view["resends"] == 1
        assert len(stopped_smtp_server.messages) == 1
        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=2)
        types = sorted(dict(r.headers)["ce_type"].decode() for r in records)
        assert types == ["ntb.notifications.delivery.failed.v1", "ntb.notifications.delivery.sent.v1"]
    finally:
        await rt.stop()


async def test_resend_uses_the_address_fixed_in_the_directory(topic_prefix, schema_for, db, smtp_server):
    """550 for a wrong mailbox; the operator corrects the recipient and resends that one delivery."""
    schema = schema_for("not")
    rt, app = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        operator = await issue_key(rt, Role.OPERATOR)
        auth = {"Authorization": f"Bearer {operator}"}
        async with http_client(app, rt) as client:
            current = (await client.get("/recipients/sekda-5272", headers=auth)).json()
            body = {k: current[k] for k in ("name", "title", "role", "region_code", "channels", "muted", "active")}
            assert (await client.put("/recipients/sekda-5272", headers=auth,
                                     json=body | {"email": "tolak.sekda@bimakota.go.id"})).status_code == 200
            event = event_of(factories.overdue("52.72"))
            await publish(topic_prefix + COMMITMENTS_EVENTS, [event], key=b"52.72")
            table = f'"{schema}".deliveries'
            failed = await eventually(lambda: db.fetchrow(
                f"SELECT * FROM {table} WHERE recipient_id = 'sekda-5272' AND status = 'failed'"))
            assert (await client.put("/recipients/sekda-5272", headers=auth,
                                     json=body | {"email": "sekda@bimakota.go.id"})).status_code == 200
            r = await client.post(f"/deliveries/{failed['delivery_id']}/resend", headers=auth)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "pending" and r.json()["address"] == "s***@bimakota.go.id"
            await eventually(lambda: db.fetchval(
                f"SELECT status = 'sent' FROM {table} WHERE delivery_id = $1", failed["delivery_id"]))
            [msg] = smtp_server.handler.to("sekda@bimakota.go.id")
            assert msg["Message-ID"] == f"<{failed['delivery_id']}@notifications.ntb-rakor>"
            audit = await db.fetchrow(f'SELECT * FROM "{schema}".delivery_audit')
            assert audit["address_before"] == "tolak.sekda@bimakota.go.id"
            assert audit["address_after"] == "sekda@bimakota.go.id"
            metrics = (await client.get("/metrics")).text
            assert 'http_requests_total{method="POST",route="/deliveries/{delivery_id}/resend",status="200"} 1.0' \
                in metrics
            assert "ntb_outbox_oldest_age_seconds" in metrics and "ntb_outbox_set_aside 0.0" in metrics
        json.dumps(dict(r.headers))  # the answer carries the request's trace
        assert parse_traceparent(r.headers["traceparent"]) is not None
    finally:
        await rt.stop()


async def _ntbctl(*args: str, **env: str) -> tuple[int, str, str]:
    """The real CLI in a subprocess, while this test's event loop keeps serving the API."""
    import asyncio
    import os
    import sys
    clean = {k: v for k, v in os.environ.items() if k not in ("NTB_API_KEY", "NTB_ENV", "NOTIFICATIONS_URL")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.ntbctl.commands", *args, env=clean | env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_ntbctl_lists_and_resends_failed_deliveries_over_the_api(topic_prefix, schema_for, db,
                                                                       stopped_smtp_server):
    import asyncio
    import contextlib

    import uvicorn

    from shared.platform.auth import ApiKeyStore

    from .conftest import free_port

    schema = schema_for("not")
    rt, app = build(notif_settings(topic_prefix, schema, stopped_smtp_server.port, delivery_max_attempts=1))
    await rt.start()
    port = free_port()
    app.state.api_keys = ApiKeyStore(rt.pool, rt.settings.api_key_pepper)
    app.include_router(rt.health_router())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        operator = await issue_key(rt, Role.OPERATOR)
        url = f"http://127.0.0.1:{port}"
        events = [event_of(factories.invitation(email=f"sekda{i}@dompukab.go.id")) for i in range(3)]
        await publish(topic_prefix + INVITATIONS_EVENTS, events)
        table = f'"{schema}".deliveries'
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 3 FROM {table} WHERE status = 'failed'"), timeout=30)

        code, out, err = await _ntbctl("deliveries", "list", "--status", "failed", "-o", "json",
                                       "--notifications-url", url, NTB_API_KEY=operator)
        assert code == 0, err
        listed = json.loads(out)
        assert sorted(d["source_event_id"] for d in listed) == sorted(e.id for e in events)
        code, out, err = await _ntbctl("deliveries", "resend", listed[0]["delivery_id"], "--notifications-url", url)
        assert code == 2 and err.strip().startswith("ntbctl: no API key")  # and nothing was resent
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE status = 'failed'") == 3

        stopped_smtp_server.start()
        code, out, err = await _ntbctl("deliveries", "resend", "--all-failed", "--notifications-url", url,
                                       NTB_API_KEY=operator)
        assert code == 0, err
        assert "events: 3/3" in err and "3 resent, 0 refused" in err
        assert sorted(line.split("\t")[0] for line in out.splitlines()) == sorted(e.id for e in events)
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 3 FROM {table} WHERE status = 'sent'"), timeout=30)
        assert len(stopped_smtp_server.messages) == 3

        code, out, err = await _ntbctl("deliveries", "resend", listed[0]["delivery_id"], "--notifications-url", url,
                                       NTB_API_KEY=operator)
        assert code == 1 and err.count("\n") == 1 and "409 Conflict" in err and "already sent" in err
        code, out, err = await _ntbctl("deliveries", "show", listed[0]["delivery_id"], "-o", "json",
                                       "--notifications-url", url, NTB_API_KEY=operator)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["status"] == "sent" and shown["resends"] == 1 and shown["audit"][0]["action"] == "resend"
        code, _, err = await _ntbctl("deliveries", "show", "00000000-0000-0000-0000-000000000000",
                                     "--notifications-url", url, NTB_API_KEY=operator)
        assert code == 1 and "404 Not Found" in err
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 5)
        await rt.stop()


# Clean but not valid trace context: the event is applied and its e-mail starts a trace of its own.
MALFORMED_TRACE_HEADERS = [
    [("ce_traceparent", PARENT.upper().encode())],  # W3C: lowercase hex only
    [("ce_traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")],  # an all-zero trace id is invalid
    [("ce_traceparent", b"ff-" + PARENT[3:].encode())],  # version ff is forbidden
    [("ce_correlationid", "k\u00f6ln-rakor".encode())],  # not a correlation id this system vouches for
]
# A line break, NUL or an oversized value in a ce_* header: the record is refused (dead-lettered) whole.
INJECTED_TRACE_HEADERS = [
    [("ce_traceparent", f"{PARENT}\r\nX-Injected: 1".encode())],
    [("ce_traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01"), ("ce_correlationid", b"a\nX-Injected: 2")],
    [("ce_traceparent", PARENT.encode()), ("ce_traceparent", b"\x00" * 55)],
    [("ce_traceparent", b"9" * 10_000)],
]


async def test_hostile_trace_headers_on_events_never_reach_the_email(topic_prefix, schema_for, db, smtp_server):
    """Malformed ce_traceparent / ce_correlationid: the event is applied and its e-mail carries a new well-formed
    trace and no correlation header it cannot vouch for; injected or oversized ones are dead-lettered, never mailed."""
    import re

    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        records = []
        for n, extra in enumerate(MALFORMED_TRACE_HEADERS + INJECTED_TRACE_HEADERS):
            event = event_of(factories.invitation(email=f"sekda{n}@dompukab.go.id"))
            headers = [(k, v) for k, v in event.to_headers() if k not in ("ce_traceparent", "ce_correlationid")]
            records.append((event.data, headers + extra))
        await publish(topic_prefix + INVITATIONS_EVENTS, records)
        refused = await read_topic(topic_prefix + INVITATIONS_EVENTS + ".dlq", expect=len(INJECTED_TRACE_HEADERS))
        assert len(refused) == len(INJECTED_TRACE_HEADERS)
        for record in refused:
            reason = dict(record.headers)["dlq_reason"].decode()
            assert "ce_traceparent" in reason or "ce_correlationid" in reason, reason
        await eventually(lambda: db.fetchval(f'SELECT count(*) = 4 FROM "{schema}".deliveries WHERE status = \'sent\''))
        assert len(smtp_server.messages) == len(MALFORMED_TRACE_HEADERS)
        for msg in smtp_server.messages:
            assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", msg["Traceparent"])
            assert TRACE not in msg["Traceparent"] and "X-Injected" not in msg
            correlation = msg["X-Correlation-ID"]
            assert correlation is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", correlation)
        rows = await db.fetch(f'SELECT traceparent FROM "{schema}".deliveries')
        assert len(rows) == len(MALFORMED_TRACE_HEADERS)
        assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", r["traceparent"]) for r in rows)
    finally:
        await rt.stop()
