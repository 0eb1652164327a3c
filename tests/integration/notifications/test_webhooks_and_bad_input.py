"""Webhooks (signed, idempotent, retried) and bad input: invalid addresses, template errors, unknown, malformed."""

from __future__ import annotations

import json
import time

import pytest

from services.notifications.bootstrap import build
from services.notifications.signing import verify
from shared.contracts.commitments import CommitmentDrafted
from shared.contracts.topics import COMMITMENTS_EVENTS, INVITATIONS_EVENTS, NOTIFICATIONS_EVENTS, dlq
from shared.platform.envelope import CloudEvent

from ..conftest import eventually, read_topic
from . import factories
from .conftest import WEBHOOK_SECRET, event_of, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_webhook_is_signed_retried_on_5xx_and_keeps_its_idempotency_key(
    topic_prefix, schema_for, db, smtp_server, webhook_listener
):
    """A 503 is retried; every attempt carries the same Idempotency-Key and a signature the receiver verifies."""
    webhook_listener.statuses = [503]
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        payload = factories.invitation(webhook_url=webhook_listener.url())
        await publish(topic_prefix + INVITATIONS_EVENTS, [event_of(payload)])
        table = f'"{schema}".deliveries'
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 2 FROM {table} WHERE status = 'sent'"))
        hook = await db.fetchrow(f"SELECT * FROM {table} WHERE channel = 'webhook'")
        assert hook["attempts"] == 2 and hook["address"] == webhook_listener.url()
        assert len(webhook_listener.received) == 2
        for request in webhook_listener.received:
            headers = request["headers"]
            assert headers["idempotency-key"] == str(hook["delivery_id"])
            assert verify(WEBHOOK_SECRET, int(headers["x-signature-timestamp"]), request["body"],
                          headers["x-signature"], now=int(time.time()))
            assert not verify("wrong-secret", int(headers["x-signature-timestamp"]), request["body"],
                              headers["x-signature"], now=int(time.time()))
        body = json.loads(webhook_listener.received[-1]["body"])
        assert body["delivery_id"] == str(hook["delivery_id"]) and body["subject"].startswith("Undangan: ")
        assert "pukul 09.00 WITA" in body["text"]
        assert webhook_listener.received[0]["body"] == webhook_listener.received[1]["body"]
        assert len(smtp_server.messages) == 1  # the email channel went out alongside, once
    finally:
        await rt.stop()


async def test_webhook_4xx_is_permanent(topic_prefix, schema_for, db, smtp_server, webhook_listener):
    """A 404 from the gateway ends the delivery as failed after one attempt."""
    webhook_listener.statuses = [404]
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        await publish(topic_prefix + INVITATIONS_EVENTS,
                      [event_of(factories.invitation(email=None, webhook_url=webhook_listener.url()))])
        table = f'"{schema}".deliveries'
        row = await eventually(lambda: db.fetchrow(f"SELECT * FROM {table} WHERE status = 'failed'"))
        assert row["reason"] == "HTTP 404" and row["attempts"] == 1 and len(webhook_listener.received) == 1
    finally:
        await rt.stop()


async def test_invalid_address_and_template_error_fail_without_sending(
    topic_prefix, schema_for, db, smtp_server, tmp_path
):
    """A bad directory address and a broken template both end as failed with the reason; nothing is sent."""
    (tmp_path / "commitment_returned.txt.j2").write_text(
        "{% block subject %}Dikembalikan{% endblock %}{% block body %}{{ event.reviewer_name }}{% endblock %}")
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port, template_dir=str(tmp_path)))
    await rt.start()
    try:
        await db.execute(f"""UPDATE "{schema}".recipients SET email = 'sekda di dompu' WHERE recipient_id = 'sekda-5205'""")
        invalid, broken = event_of(factories.deadline("52.05")), event_of(factories.returned("52.01"))
        await publish(topic_prefix + COMMITMENTS_EVENTS, [invalid, broken])
        table = f'"{schema}".deliveries'
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 6 FROM {table} WHERE status <> 'pending'"))
        rows = {r["recipient_id"]: r for r in await db.fetch(f"SELECT * FROM {table}")}
        assert rows["sekda-5205"]["status"] == "failed" and rows["sekda-5205"]["reason"].startswith("invalid address")
        assert rows["disnaker-5205"]["status"] == "sent"
        for rid in ("sekda-5201", "disnaker-5201", "bpkad-5201"):
            assert rows[rid]["status"] == "failed" and rows[rid]["attempts"] == 0
            assert "template error" in rows[rid]["reason"] and "reviewer_name" in rows[rid]["reason"]
            assert rows[rid]["subject"] is None
        assert sorted(m["X-Envelope-To"] for m in smtp_server.messages) == ["bpkad@dompukab.go.id",
                                                                             "disnaker@dompukab.go.id"]
        records = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=7)
        failed = sorted(json.loads(r.value)["recipient_id"] for r in records
                        if dict(r.headers)["ce_type"] == b"ntb.notifications.delivery.failed.v1")
        assert failed == ["bpkad-5201", "disnaker-5201", "sekda-5201", "sekda-5205"]
    finally:
        await rt.stop()


async def test_unknown_type_and_malformed_go_to_the_dlq_and_an_unhandled_documented_type_is_a_no_op(
        topic_prefix, schema_for, db, smtp_server):
    """Nothing is skipped: a type not documented for the topic and an invalid payload are dead-lettered; a type
    documented for the topic that notifications does not act on (drafted) is applied as a no-op."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        unknown = CloudEvent.new(source="/test", type="ntb.commitments.something.new.v1", data=b"{}")
        malformed = CloudEvent.new(source="/test", type="ntb.commitments.commitment.overdue.v1",
                                   data=b'{"region_code": "99.99"}')
        drafted = event_of(CommitmentDrafted(**factories.transition("52.03")))
        good = event_of(factories.overdue("52.03"))
        topic = topic_prefix + COMMITMENTS_EVENTS
        await publish(topic, [unknown, malformed, drafted, good], key=b"52.03")
        consumer = rt.consumers[0]
        await eventually(lambda: _value(sum(consumer.counts.values()) == 4))
        assert consumer.counts == {"dead_lettered": 2, "applied": 2}
        dead = await read_topic(dlq(topic), expect=2, timeout=10)
        assert [r.value for r in dead] == [unknown.data, malformed.data]
        reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
        assert "type 'ntb.commitments.something.new.v1' is not accepted on ntb.commitments.events" in reasons[0]
        assert "invalid ntb.commitments.commitment.overdue.v1 payload" in reasons[1]
        journal = await db.fetch(f'SELECT event_id FROM "{schema}".event_journal')
        assert [r["event_id"] for r in journal] == [good.id]
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".deliveries') == 3  # Sekda, BPKAD, province
    finally:
        await rt.stop()


async def _value(v):
    return v
