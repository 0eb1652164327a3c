"""The first flow on the real stack: invitations -> outbox -> Kafka -> notifications inbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from services.notifications.settings import NotificationsSettings
from shared.contracts.roles import Role
from shared.contracts.topics import INVITATIONS_EVENTS

from .conftest import eventually, http_client, issue_key, published_events, read_topic, service_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


def meeting_body(days: int = 14) -> dict:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    return {
        "title": "Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan",
        "agenda": "Komitmen anggaran 2026",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=3)).isoformat(),
        "venue": "Pendopo Wakil Gubernur NTB, Mataram",
        "organizer": "Wakil Gubernur NTB",
    }


async def test_scheduled_meeting_reaches_notifications_exactly_once(topic_prefix, schema_for, db):
    """A meeting scheduled over HTTP is published via the outbox and journaled once by notifications."""
    inv_rt, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema_for("inv")))
    not_rt, not_app = build_notifications(service_settings(NotificationsSettings, topic_prefix, schema_for("not")))
    await inv_rt.start()
    await not_rt.start()
    try:
        token = await issue_key(inv_rt, Role.ORGANIZER)
        async with http_client(inv_app, inv_rt) as client:
            response = await client.post("/meetings", json=meeting_body(),
                                         headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 201, response.text
            meeting_id = response.json()["meeting_id"]
            assert response.json()["starts_at"].endswith("+08:00")
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "kafka": "ok"}

        journal = f'"{schema_for("not")}".event_journal'
        rows = await eventually(lambda: db.fetch(f"SELECT * FROM {journal}"))
        assert len(rows) == 1
        assert rows[0]["event_type"] == "ntb.invitations.meeting.scheduled.v1"
        assert rows[0]["payload"] and json.loads(rows[0]["payload"])["meeting_id"] == meeting_id
        # the relay deletes what it has published (its commit may trail the consumer by a moment)
        assert await eventually(lambda: db.fetchval(f'SELECT count(*) = 0 FROM "{schema_for("inv")}".outbox'))

        async with http_client(not_app, not_rt) as client:
            metrics = (await client.get("/metrics")).text
            assert (await client.get("/healthz")).json() == {"status": "ok"}
        consumer = not_rt.consumers[0].name
        assert f'ntb_messages_handled_total{{consumer="{consumer}",outcome="applied"}} 1.0' in metrics
        assert "ntb_handler_seconds_bucket" in metrics

        records = await read_topic(topic_prefix + INVITATIONS_EVENTS, expect=1)
        headers = dict(records[0].headers)
        assert records[0].key == meeting_id.encode()
        assert headers["ce_type"] == b"ntb.invitations.meeting.scheduled.v1"
        assert headers["content-type"] == b"application/json"
        assert headers["ce_source"] == b"/ntb/rakor/invitations"
    finally:
        await not_rt.stop()
        await inv_rt.stop()


async def test_schedule_refuses_bad_input_and_writes_nothing(topic_prefix, schema_for, db):
    """A start in the past, an end before the start, or no credentials: 4xx with a reason, no rows."""
    inv_rt, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema_for("inv")))
    await inv_rt.start()
    try:
        token = await issue_key(inv_rt, Role.ORGANIZER)
        reviewer = await issue_key(inv_rt, Role.BPJS_REVIEWER)
        auth = {"Authorization": f"Bearer {token}"}
        async with http_client(inv_app, inv_rt) as client:
            past = meeting_body(days=-1)
            r = await client.post("/meetings", json=past, headers=auth)
            assert r.status_code == 422 and "future" in r.json()["detail"]
            backwards = meeting_body() | {"ends_at": meeting_body()["starts_at"]}
            r = await client.post("/meetings", json=backwards, headers=auth)
            assert r.status_code == 422 and "after" in r.json()["detail"]
            r = await client.post("/meetings", json=meeting_body())
            assert r.status_code == 401
            r = await client.post("/meetings", json=meeting_body(), headers={"Authorization": "Bearer ntbk_x_y"})
            assert r.status_code == 401
            r = await client.post("/meetings", json=meeting_body(), headers={"Authorization": f"Bearer {reviewer}"})
            assert r.status_code == 403 and "organizer" in r.json()["detail"]
        schema = schema_for("inv")
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".meetings') == 0
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".outbox') == 0
    finally:
        await inv_rt.stop()


async def test_retried_post_with_idempotency_key_creates_one_meeting(topic_prefix, schema_for, db):
    """The same Idempotency-Key twice returns the same meeting and emits one event."""
    inv_rt, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema_for("inv")))
    await inv_rt.start()
    try:
        token = await issue_key(inv_rt, Role.ORGANIZER)
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "rakor-2026-01"}
        async with http_client(inv_app, inv_rt) as client:
            first = await client.post("/meetings", json=meeting_body(), headers=headers)
            second = await client.post("/meetings", json=meeting_body(), headers=headers)
        assert first.status_code == 201 and second.status_code == 201
        assert first.json()["meeting_id"] == second.json()["meeting_id"]
        # Counted where it was published (the relay may already have emptied the outbox).
        published = await published_events(db, schema_for("inv"), topic_prefix + INVITATIONS_EVENTS,
                                           "ntb.invitations.meeting.scheduled.v1")
        assert [e["payload"]["meeting_id"] for e in published] == [first.json()["meeting_id"]]
    finally:
        await inv_rt.stop()
