"""Bad input gets a 4xx with the reason and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.contracts.roles import Role

from ..conftest import issue_key
from .conftest import RESPONDED, meeting_body, organizer_client, scheduled_and_invited, tokens_by_seat

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def _nothing_answered(db, schema, published):
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".responses') == 0
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".invitations WHERE response IS NOT NULL') == 0
    assert await published(RESPONDED) == []


async def test_bad_tokens_and_bad_answers_are_refused(start_service, clock, schema_for, topic_prefix, db, published):
    """Tampered, swapped or expired tokens and incomplete answers: 403/410/422 with a reason, no writes."""
    rt, app = await start_service()
    schema = schema_for("inv")
    start = clock.now + timedelta(days=10)
    client, auth = await organizer_client(rt, app)
    async with client:
        await scheduled_and_invited(client, auth, start)
        seats = await tokens_by_seat(db, schema, topic_prefix)
        (_, token), (other_id, _) = seats[("52.01", "sekda")], seats[("52.02", "sekda")]
        invitation_hex, expiry, signature = token.split(".")
        tampered = f"{invitation_hex}.{expiry}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
        swapped = f"{other_id.replace('-', '')}.{expiry}.{signature}"
        stretched = f"{invitation_hex}.{int(expiry) + 86400}.{signature}"
        for bad in (tampered, swapped, stretched, "not-a-token", "x" * 150):
            r = await client.post(f"/rsvp/{bad}", json={"response": "accepted"})
            assert r.status_code == 403 and "token" in r.json()["detail"], (bad, r.text)
        assert (await client.get(f"/rsvp/{tampered}")).status_code == 403

        r = await client.post(f"/rsvp/{token}", json={"response": "declined"})
        assert r.status_code == 422 and "reason" in r.json()["detail"]
        r = await client.post(f"/rsvp/{token}", json={"response": "delegated"})
        assert r.status_code == 422 and "delegate" in r.json()["detail"]
        r = await client.post(f"/rsvp/{token}", json={"response": "delegated", "delegate": {"name": "A", "title": "B"}})
        assert r.status_code == 422 and "e-mail or phone" in r.text
        r = await client.post(f"/rsvp/{token}", json={"response": "maybe"})
        assert r.status_code == 422

        clock.set(start + timedelta(seconds=1))
        r = await client.post(f"/rsvp/{token}", json={"response": "accepted"})
        assert r.status_code == 410 and "expired" in r.json()["detail"]
    await _nothing_answered(db, schema, published)


async def test_rsvp_to_a_cancelled_meeting_is_gone(start_service, clock, schema_for, topic_prefix, db, published):
    """After cancellation a genuine link answers 410 naming the cancellation, and records nothing."""
    rt, app = await start_service()
    schema = schema_for("inv")
    client, auth = await organizer_client(rt, app)
    async with client:
        meeting_id = await scheduled_and_invited(client, auth, clock.now + timedelta(days=10))
        _, token = (await tokens_by_seat(db, schema, topic_prefix))[("52.05", "kepala_disnaker")]
        assert (await client.post(f"/meetings/{meeting_id}/cancel", headers=auth, json={"reason": "Ditunda"})).is_success
        r = await client.post(f"/rsvp/{token}", json={"response": "accepted"})
        assert r.status_code == 410 and "cancelled" in r.json()["detail"]
        r = await client.post(f"/meetings/{meeting_id}/invitations", headers=auth)
        assert r.status_code == 410
        r = await client.post(f"/meetings/{meeting_id}/reschedule", headers=auth, json={
            "starts_at": (clock.now + timedelta(days=12)).isoformat(),
            "ends_at": (clock.now + timedelta(days=12, hours=2)).isoformat()})
        assert r.status_code == 410
    await _nothing_answered(db, schema, published)


async def test_directory_and_schedule_validation(start_service, clock, schema_for, db, published):
    """Unknown region or role, a bad e-mail, a past start, an early conclusion: 4xx and nothing written."""
    rt, app = await start_service()
    schema = schema_for("inv")
    reviewer = await issue_key(rt, Role.BPJS_REVIEWER)
    client, auth = await organizer_client(rt, app)
    entry = {"name": "Contoh Sekda", "title": "Sekretaris Daerah", "email": "sekda@dompukab.go.id"}
    async with client:
        r = await client.put("/directory/52.99/sekda", json=entry, headers=auth)
        assert r.status_code == 422 and "unknown region code" in r.json()["detail"]
        r = await client.put("/directory/52.05/bupati", json=entry, headers=auth)
        assert r.status_code == 422 and "unknown role" in r.json()["detail"]
        r = await client.put("/directory/52.05/sekda", json=entry | {"email": "bukan-email"}, headers=auth)
        assert r.status_code == 422
        r = await client.put("/directory/52.05/sekda", json=entry, headers={"Authorization": f"Bearer {reviewer}"})
        assert r.status_code == 403
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".invitees') == 0

        r = await client.post("/meetings", json=meeting_body(clock.now - timedelta(hours=1)), headers=auth)
        assert r.status_code == 422 and "future" in r.json()["detail"]
        r = await client.post("/meetings", json=meeting_body(clock.now + timedelta(days=5)), headers=auth)
        meeting_id = r.json()["meeting_id"]
        r = await client.post(f"/meetings/{meeting_id}/invitations", headers=auth)
        assert r.status_code == 409 and "directory is empty" in r.json()["detail"]
        r = await client.post(f"/meetings/{meeting_id}/reschedule", headers=auth, json={
            "starts_at": (clock.now + timedelta(days=6)).isoformat(),
            "ends_at": (clock.now + timedelta(days=5)).isoformat()})
        assert r.status_code == 422 and "after" in r.json()["detail"]
        r = await client.post(f"/meetings/{meeting_id}/conclude", headers=auth)
        assert r.status_code == 409 and "not started" in r.json()["detail"]
        r = await client.post(f"/meetings/{meeting_id}/attendance", headers=auth,
                              json={"invitation_ids": [meeting_id]})
        assert r.status_code == 409
        assert (await client.get("/meetings/00000000-0000-0000-0000-000000000000/status",
                                 headers=auth)).status_code == 404

        # A valid edit works and is what later invitations use.
        r = await client.put("/directory/5205/sekda", json=entry, headers=auth)
        assert r.status_code == 200 and r.json()["region_code"] == "52.05"
        r = await client.post("/directory/import", headers=auth)
        assert r.json() == {"written": 29, "kept": 1}
        r = await client.get("/directory/52.05/sekda", headers=auth)
        assert r.json()["name"] == "Contoh Sekda" and r.json()["email"] == "sekda@dompukab.go.id"
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".meetings') == 1
    events = await published()
    assert [e["type"] for e in events] == ["ntb.invitations.meeting.scheduled.v1"]
    row = await db.fetchrow(f'SELECT starts_at, sequence, status FROM "{schema}".meetings')
    assert row["sequence"] == 0 and row["status"] == "scheduled"
