"""Meeting changes reach everyone invited: a reschedule (one event per invitee, with their link) moves the
calendar entry, a cancellation (meeting-wide) removes it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.notifications.bootstrap import build
from shared.contracts.topics import INVITATIONS_EVENTS

from ..conftest import eventually
from . import factories
from .conftest import event_of, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_reschedule_and_cancel_reach_current_invitees_with_calendar_updates(
    topic_prefix, schema_for, db, smtp_server
):
    """Invitees of the meeting (a delegate replacing the delegator) get the new time, then the cancellation."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        meeting = factories.meeting_info()
        sekda = factories.invitation("sekda@dompukab.go.id", meeting=meeting)
        delegate = factories.invitation("asisten1@dompukab.go.id", meeting=meeting, name="Asisten I Setda Dompu",
                                        delegated_from=sekda.invitation_id)
        bpkad = factories.invitation("bpkad@dompukab.go.id", meeting=meeting, name="Kepala BPKAD Dompu")
        other_meeting = factories.invitation("lain@bimakab.go.id")
        topic = topic_prefix + INVITATIONS_EVENTS
        await publish(topic, [event_of(p) for p in (sekda, delegate, bpkad, other_meeting)])
        table = f'"{schema}".deliveries'
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 4 FROM {table} WHERE status = 'sent'"))

        moved = factories.rescheduled(meeting, meeting.starts_at + timedelta(days=1))
        assert moved.calendar_uid is None  # the fallback identity: invitation id and event-time sequence
        # The meeting-wide event alone tells nobody (it carries no one's link); each seat still held
        # (the delegate, not the sekda who delegated) gets an event of its own.
        await publish(topic, [event_of(moved), event_of(factories.told(moved, delegate)),
                              event_of(factories.told(moved, bpkad, "accepted"))])
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 6 FROM {table} WHERE status = 'sent'"))
        updates = [m for m in smtp_server.messages if m["Subject"].strip().startswith("Perubahan jadwal")]
        assert sorted(m["X-Envelope-To"] for m in updates) == ["asisten1@dompukab.go.id", "bpkad@dompukab.go.id"]
        for m, invited in ((m, delegate if m["X-Envelope-To"].startswith("asisten1") else bpkad) for m in updates):
            body = m.get_body(("plain",)).get_content()
            assert f"/undangan/{invited.invitation_id.hex}" in body  # their own link, nobody else's
            assert body.count("/undangan/") == 1
        update = next(m for m in updates if m["X-Envelope-To"] == "asisten1@dompukab.go.id")
        calendar = next(p for p in update.walk() if p.get_content_type() == "text/calendar").get_content()
        assert f"UID:{delegate.invitation_id}@notifications.ntb-rakor" in calendar
        assert "DTSTART:20261204T010000Z" in calendar and "SEQUENCE:0" not in calendar
        text = update.get_body(("plain",)).get_content()
        assert "Jumat, 4 Desember 2026 pukul 09.00 WITA" in text and "Kamis, 3 Desember 2026" in text

        await publish(topic, [event_of(factories.cancelled(moved.meeting))])
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 8 FROM {table} WHERE status = 'sent'"))
        cancels = [m for m in smtp_server.messages if m["Subject"].strip().startswith("Dibatalkan")]
        assert len(cancels) == 2
        calendar = next(p for p in cancels[0].walk() if p.get_content_type() == "text/calendar").get_content()
        assert "METHOD:CANCEL" in calendar and "STATUS:CANCELLED" in calendar
        assert not [m for m in smtp_server.messages if m["X-Envelope-To"] == "lain@bimakab.go.id"
                    and not m["Subject"].strip().startswith("Undangan")]
    finally:
        await rt.stop()


async def test_producer_calendar_identity_is_used_when_sent(topic_prefix, schema_for, db, smtp_server):
    """When the invitations service sends calendar_uid/sequence, the .ics carries exactly those."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        invite = factories.invitation().model_copy(update={"calendar_uid": "rakor-2026@ntbprov.go.id"})
        moved = factories.rescheduled(invite.meeting, invite.meeting.starts_at + timedelta(hours=2)).model_copy(
            update={"calendar_uid": "rakor-2026@ntbprov.go.id", "calendar_sequence": 1})
        await publish(topic_prefix + INVITATIONS_EVENTS, [event_of(invite), event_of(factories.told(moved, invite))])
        await eventually(lambda: db.fetchval(f'SELECT count(*) = 2 FROM "{schema}".deliveries WHERE status = \'sent\''))
        calendars = [next(p for p in m.walk() if p.get_content_type() == "text/calendar").get_content()
                     for m in smtp_server.messages]
        assert all("UID:rakor-2026@ntbprov.go.id" in c for c in calendars)
        assert sorted(c.count("SEQUENCE:1") for c in calendars) == [0, 1]
    finally:
        await rt.stop()
