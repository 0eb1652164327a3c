"""Idempotent issuing and durable reminders: two replicas, restarts, reschedule and cancel."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta

import pytest

from services.invitations import tokens
from shared.contracts.topics import INVITATIONS_EVENTS

from ..conftest import eventually, read_topic
from .conftest import ISSUED, REMINDER, organizer_client, scheduled_and_invited, token_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


def count(db, sql):
    return lambda: db.fetchval(sql)


async def test_issuing_twice_or_concurrently_creates_thirty_not_sixty(start_service, clock, schema_for, db, published):
    """A second and two concurrent issue calls add nothing: 30 invitations, 30 events, 60 timers."""
    rt, app = await start_service()
    schema = schema_for("inv")
    client, auth = await organizer_client(rt, app)
    async with client:
        meeting_id = await scheduled_and_invited(client, auth, clock.now + timedelta(days=10))
        again = await client.post(f"/meetings/{meeting_id}/invitations", headers=auth)
        assert again.json() == {"issued": 0, "already_issued": 30, "total": 30}
        both = await asyncio.gather(*(client.post(f"/meetings/{meeting_id}/invitations", headers=auth)
                                      for _ in range(2)))
        assert [r.json()["issued"] for r in both] == [0, 0]
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".invitations') == 30
    assert len(await published(ISSUED)) == 30
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".timers') == 60


async def test_one_reminder_per_invitee_with_two_replicas(start_service, clock, schema_for, topic_prefix, db,
                                                          published):
    """Two running replicas on one schema fire each due reminder once: 30 events in the outbox and on Kafka."""
    rt_a, app = await start_service()
    rt_b, _ = await start_service()
    schema = schema_for("inv")
    start = clock.now + timedelta(days=10)
    client, auth = await organizer_client(rt_a, app)
    async with client:
        await scheduled_and_invited(client, auth, start)
    clock.set(start - timedelta(days=3) + timedelta(seconds=1))
    await eventually(count(db, f'SELECT count(*) = 30 FROM "{schema}".timers WHERE fired_at IS NOT NULL'))
    await asyncio.sleep(0.3)  # both wheels poll again: nothing more may fire
    reminders = await published(REMINDER)
    assert len(reminders) == 30 and len({r["payload"]["invitation_id"] for r in reminders}) == 30
    assert rt_a.timers.fired_total + rt_b.timers.fired_total == 30
    records = await read_topic(topic_prefix + INVITATIONS_EVENTS, expect=61)
    assert Counter(dict(r.headers)["ce_type"].decode() for r in records)[REMINDER] == 30


async def test_reminders_survive_a_restart(start_service, clock, db, published):
    """Timers set by a stopped runtime are fired by the next one: state lives in PostgreSQL."""
    rt, app = await start_service()
    start = clock.now + timedelta(days=10)
    client, auth = await organizer_client(rt, app)
    async with client:
        await scheduled_and_invited(client, auth, start)
    await rt.stop()
    clock.set(start - timedelta(days=1) + timedelta(seconds=1))  # both leads due while it was down
    restarted, _ = await start_service()
    await eventually(lambda: _async(restarted.timers.fired_total == 60))
    reminders = await published(REMINDER)
    assert Counter(r["payload"]["lead"] for r in reminders) == {"P3D": 30, "P1D": 30}


async def test_reschedule_moves_and_cancel_cancels_reminders(start_service, clock, schema_for, db, published):
    """Rescheduling re-arms timers at the new start minus each lead; cancelling leaves none pending."""
    rt, app = await start_service(reminder_leads=["PT2M"])
    schema = schema_for("inv")
    start = (clock.now + timedelta(hours=2)).replace(microsecond=0)
    client, auth = await organizer_client(rt, app)
    async with client:
        meeting_id = await scheduled_and_invited(client, auth, start)
        due = await db.fetch(f'SELECT DISTINCT due_at FROM "{schema}".timers')
        assert [r["due_at"] for r in due] == [start - timedelta(minutes=2)]
        later = start + timedelta(days=1)
        r = await client.post(f"/meetings/{meeting_id}/reschedule", headers=auth, json={
            "starts_at": later.isoformat(), "ends_at": (later + timedelta(hours=2)).isoformat(),
            "reason": "Menyesuaikan agenda Wakil Gubernur"})
        assert r.status_code == 200, r.text
        due = await db.fetch(f'SELECT DISTINCT due_at FROM "{schema}".timers WHERE cancelled_at IS NULL')
        assert [r["due_at"] for r in due] == [later - timedelta(minutes=2)]
        clock.set(start)  # the old reminder time passes: nothing fires
        await asyncio.sleep(0.3)
        assert await published(REMINDER) == []
        r = await client.post(f"/meetings/{meeting_id}/cancel", headers=auth, json={"reason": "Ditunda"})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
    pending = f'SELECT count(*) FROM "{schema}".timers WHERE fired_at IS NULL AND cancelled_at IS NULL'
    assert await db.fetchval(pending) == 0
    clock.set(later)
    await asyncio.sleep(0.3)
    assert await published(REMINDER) == []
    rescheduled = await published("ntb.invitations.meeting.rescheduled.v1")
    assert rescheduled[0]["payload"]["calendar_sequence"] == 1
    assert rescheduled[0]["payload"]["meeting"]["starts_at"].endswith("+08:00")
    assert "undangan" not in json.dumps(rescheduled[0]["payload"])  # meeting-wide: nobody's link
    # Each invitee is told in an event of their own, with a link to their own invitation, signed
    # with the moved deadline.
    told = await published("ntb.invitations.invitation.rescheduled.v1")
    issued = await published(ISSUED)
    assert sorted(t["payload"]["invitation_id"] for t in told) == sorted(i["payload"]["invitation_id"] for i in issued)
    secret = rt.settings.rsvp_secret.get_secret_value().encode()
    for event in told:
        payload = event["payload"]
        invitation_id, expires = tokens.verify_signature(secret, token_of(payload["rsvp_url"]))
        assert str(invitation_id) == payload["invitation_id"]
        assert expires == later - timedelta(hours=12) == datetime.fromisoformat(payload["rsvp_expires_at"])
        assert payload["calendar_sequence"] == 1 and payload["previous_starts_at"]
    cancelled = await published("ntb.invitations.meeting.cancelled.v1")
    assert cancelled[0]["payload"]["calendar_sequence"] == 2


async def _async(value):
    return value
