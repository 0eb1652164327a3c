"""Email delivery on the real stack and a real SMTP server: once per recipient, retries, failures."""

from __future__ import annotations

import json

import pytest

from services.notifications import domain
from services.notifications.bootstrap import build
from shared.contracts.notifications import Channel
from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS, INVITATIONS_EVENTS, NOTIFICATIONS_EVENTS

from ..conftest import eventually, http_client, issue_key, read_topic
from . import factories
from .conftest import event_of, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_invitation_is_emailed_once_under_redelivery_with_ics(topic_prefix, schema_for, db, smtp_server):
    """The same InvitationIssued delivered twice gives one row, one email with a stable Message-ID and the .ics."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        payload = factories.invitation()
        event = event_of(payload)
        await publish(topic_prefix + INVITATIONS_EVENTS, [event, event])
        consumer = rt.consumers[0]
        await eventually(lambda: _value(consumer.counts.get("duplicate", 0) == 1))
        await eventually(lambda: db.fetchval(f'SELECT count(*) FROM "{schema}".deliveries WHERE status = \'sent\''))
        rows = await db.fetch(f'SELECT * FROM "{schema}".deliveries')
        assert len(rows) == 1 and rows[0]["attempts"] == 1 and rows[0]["channel"] == "email"
        expected_id = domain.delivery_id(event.id, f"invitee:{payload.invitation_id}", Channel.EMAIL)
        assert rows[0]["delivery_id"] == expected_id

        [msg] = smtp_server.handler.to("sekda@dompukab.go.id")
        assert msg["Message-ID"] == f"<{expected_id}@notifications.ntb-rakor>"
        assert msg["Subject"] == "Undangan: Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan, Kamis, 3 Desember 2026"
        text = msg.get_body(("plain",)).get_content()
        assert "Kamis, 3 Desember 2026 pukul 09.00 WITA s.d. 12.00 WITA" in text
        [ics] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        calendar = ics.get_content()
        assert f"UID:{payload.invitation_id}@notifications.ntb-rakor" in calendar
        assert "DTSTART:20261203T010000Z" in calendar and "METHOD:REQUEST" in calendar

        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=1)
        [sent] = [r for r in records if dict(r.headers)["ce_type"] == b"ntb.notifications.delivery.sent.v1"]
        assert json.loads(sent.value)["delivery_id"] == str(expected_id)
        assert dict(sent.headers)["ce_correlationid"].decode() == event.correlation_id
        assert len(smtp_server.messages) == 1
    finally:
        await rt.stop()


async def test_smtp_down_then_back_is_retried_until_sent(topic_prefix, schema_for, db, stopped_smtp_server):
    """Connection refused is transient: the delivery backs off, and is sent once the server is back."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, stopped_smtp_server.port))
    await rt.start()
    try:
        await publish(topic_prefix + INVITATIONS_EVENTS, [event_of(factories.invitation())])
        table = f'"{schema}".deliveries'
        await eventually(lambda: db.fetchval(f"SELECT attempts >= 2 FROM {table}"))
        row = await db.fetchrow(f"SELECT status, last_error, next_attempt_at FROM {table}")
        assert row["status"] == "pending" and "SMTP unavailable" in row["last_error"]
        stopped_smtp_server.start()
        await eventually(lambda: db.fetchval(f"SELECT status = 'sent' FROM {table}"), timeout=20)
        assert len(stopped_smtp_server.messages) == 1
        assert await db.fetchval(f"SELECT reason FROM {table}") is None
    finally:
        await rt.stop()


async def test_retries_exhausted_end_as_failed_with_reason(topic_prefix, schema_for, db, stopped_smtp_server):
    """A server that never comes back: after max attempts the delivery is failed, with why, and DeliveryFailed out."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, stopped_smtp_server.port, delivery_max_attempts=3))
    await rt.start()
    try:
        event = event_of(factories.invitation())
        await publish(topic_prefix + INVITATIONS_EVENTS, [event])
        table = f'"{schema}".deliveries'
        row = await eventually(lambda: db.fetchrow(f"SELECT * FROM {table} WHERE status = 'failed'"), timeout=20)
        assert row["attempts"] == 3 and row["reason"].startswith("gave up after 3 attempts: SMTP unavailable")
        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=1)
        [failed] = [json.loads(r.value) for r in records]
        assert failed["delivery_id"] == str(row["delivery_id"]) and failed["attempts"] == 3
        assert failed["source_event_id"] == event.id and "gave up" in failed["reason"]
    finally:
        await rt.stop()


async def test_smtp_550_fails_for_good_with_reason_and_event(topic_prefix, schema_for, db, smtp_server):
    """A permanent refusal is not retried: failed, reason recorded, DeliveryFailed out, visible over HTTP."""
    schema = schema_for("not")
    rt, app = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        operator = await issue_key(rt, Role.OPERATOR)
        auth = {"Authorization": f"Bearer {operator}"}
        async with http_client(app, rt) as client:
            current = (await client.get("/recipients/sekda-5272", headers=auth)).json()
            body = {k: current[k] for k in ("name", "title", "role", "region_code", "channels", "muted", "active")}
            r = await client.put("/recipients/sekda-5272", headers=auth,
                                 json=body | {"email": "tolak.sekda@bimakota.go.id"})
            assert r.status_code == 200, r.text
            event = event_of(factories.overdue("52.72"))
            await publish(topic_prefix + COMMITMENTS_EVENTS, [event], key=b"52.72")
            table = f'"{schema}".deliveries'
            # Sekda, Kepala BPKAD and the province's escalation desk.
            await eventually(lambda: db.fetchval(f"SELECT count(*) = 3 FROM {table} WHERE status <> 'pending'"))
            failed = await db.fetchrow(f"SELECT * FROM {table} WHERE recipient_id = 'sekda-5272'")
            assert failed["status"] == "failed" and failed["attempts"] == 1
            assert "550" in failed["reason"] and "Mailbox unavailable" in failed["reason"]
            escalated = await db.fetchrow(f"SELECT * FROM {table} WHERE recipient_id = 'prov-escalation'")
            assert escalated["status"] == "sent"
            [msg] = smtp_server.handler.to("kadis@disnakertrans.ntbprov.go.id")
            assert msg["Subject"] == "Eskalasi: komitmen Kota Bima melewati batas waktu"

            log = await client.get("/deliveries", params={"event_id": event.id}, headers=auth)
            assert log.status_code == 200
            by_recipient = {d["recipient_id"]: d for d in log.json()}
            assert by_recipient["sekda-5272"]["status"] == "failed" and "550" in by_recipient["sekda-5272"]["reason"]
            assert by_recipient["sekda-5272"]["address"] == "t***@bimakota.go.id"
            one = await client.get(f"/deliveries/{failed['delivery_id']}", headers=auth)
            assert one.status_code == 200 and one.json()["status"] == "failed"
            per_person = await client.get("/deliveries", params={"recipient_id": "prov-escalation"}, headers=auth)
            assert [d["source_event_id"] for d in per_person.json()] == [event.id]
            assert (await client.get("/deliveries")).status_code == 401
            metrics = (await client.get("/metrics")).text
            assert 'ntb_deliveries_total{channel="email",status="failed"} 1.0' in metrics
            assert 'ntb_deliveries_total{channel="email",status="sent"} 2.0' in metrics  # BPKAD and the province

        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=2)
        failures = [json.loads(r.value) for r in records
                    if dict(r.headers)["ce_type"] == b"ntb.notifications.delivery.failed.v1"]
        assert len(failures) == 1 and failures[0]["recipient_id"] == "sekda-5272" and "550" in failures[0]["reason"]
    finally:
        await rt.stop()


async def _value(v):
    return v
