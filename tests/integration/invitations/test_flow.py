"""Issue -> RSVP -> delegate -> reminders -> attendance -> conclude, on the real Kafka and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from shared.contracts.topics import INVITATIONS_EVENTS

from ..conftest import eventually, read_topic
from .conftest import CONCLUDED, ISSUED, REMINDER, RESPONDED, organizer_client, scheduled_and_invited, tokens_by_seat

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

DELEGATE = {"name": "Contoh Sekretaris BPKAD Lombok Timur", "title": "Sekretaris BPKAD Kabupaten Lombok Timur",
            "email": "sekretaris.bpkad@lomboktimurkab.go.id", "phone": "+6281200000001"}


async def test_full_rakor_flow(start_service, clock, schema_for, topic_prefix, db, published):
    """30 invitations; accept, decline, changed answer, delegation; reminders skip decliners; conclude per region."""
    rt, app = await start_service()
    schema = schema_for("inv")
    start = (clock.now + timedelta(days=10)).replace(microsecond=0)
    client, auth = await organizer_client(rt, app)
    async with client:
        meeting_id = await scheduled_and_invited(client, auth, start)
        seats = await tokens_by_seat(db, schema, topic_prefix)
        assert len(seats) == 30 and len({region for region, _ in seats}) == 10

        accept_id, accept = seats[("52.01", "sekda")]
        r = await client.post(f"/rsvp/{accept}", json={"response": "accepted"})
        assert r.status_code == 200 and r.json()["response"] == "accepted", r.text
        decline_id, decline = seats[("52.04", "sekda")]
        r = await client.post(f"/rsvp/{decline}", json={"response": "declined", "reason": "Dinas luar daerah"})
        assert r.status_code == 200 and r.json()["reason"] == "Dinas luar daerah"
        _, changer = seats[("52.02", "sekda")]
        await client.post(f"/rsvp/{changer}", json={"response": "declined", "reason": "Bentrok jadwal"})
        r = await client.post(f"/rsvp/{changer}", json={"response": "accepted"})
        assert r.status_code == 200 and r.json()["response"] == "accepted"
        delegator_id, delegator = seats[("52.03", "kepala_bpkad")]
        r = await client.post(f"/rsvp/{delegator}", json={"response": "delegated", "delegate": DELEGATE})
        assert r.status_code == 200, r.text
        delegate_id = r.json()["delegate_invitation_id"]
        assert delegate_id and r.json()["response"] == "delegated"

        # The delegate got an invitation of their own, with a working link.
        delegate_issued = [e["payload"] for e in await published(ISSUED)
                           if e["payload"]["delegated_from"] == delegator_id]
        assert len(delegate_issued) == 1 and delegate_issued[0]["role"] == "delegate"
        assert delegate_issued[0]["invitee"]["name"] == DELEGATE["name"]
        assert delegate_issued[0]["meeting"]["starts_at"].endswith("+08:00")
        assert delegate_issued[0]["calendar_uid"].startswith(meeting_id)
        r = await client.get(f"/rsvp/{delegate_issued[0]['rsvp_url'].rsplit('/', 1)[-1]}")
        assert r.status_code == 200 and r.json()["delegated_from"] == delegator_id

        responded = [e["payload"] for e in await published(RESPONDED)]
        assert [p["response"] for p in responded] == ["accepted", "declined", "declined", "accepted", "delegated"]
        assert responded[3]["previous_response"] == "declined"
        assert responded[4]["delegate"]["email"] == DELEGATE["email"]
        history = await db.fetch(f'SELECT response, previous_response FROM "{schema}".responses ORDER BY id')
        assert [(h["response"], h["previous_response"]) for h in history][2:4] == [("declined", None),
                                                                                   ("accepted", "declined")]

        # Three days before: everyone still expected is reminded once; the decliner and delegator are not.
        clock.set(start - timedelta(days=3) + timedelta(minutes=1))
        reminders = await eventually(lambda: _reminders(published, 29))
        reminded = {p["invitation_id"] for p in reminders}
        assert decline_id not in reminded and delegator_id not in reminded and delegate_id in reminded
        assert all(p["lead"] == "P3D" for p in reminders)
        by_id = {p["invitation_id"]: p for p in reminders}
        # Everyone reminded gets their link (one who accepted may still decline or delegate) and their answer.
        assert by_id[accept_id]["rsvp_url"] and by_id[accept_id]["response"] == "accepted"
        assert by_id[delegate_id]["rsvp_url"] and by_id[delegate_id]["response"] is None
        clock.set(start - timedelta(days=1) + timedelta(minutes=1))
        await eventually(lambda: _reminders(published, 58))

        status = (await client.get(f"/meetings/{meeting_id}/status", headers=auth)).json()
        assert status["totals"] == {"accepted": 2, "declined": 1, "delegated": 1, "not_answered": 26}
        lotim = next(r for r in status["regions"] if r["region_code"] == "52.03")
        assert lotim["region_name"] == "Kabupaten Lombok Timur" and len(lotim["seats"]) == 4

        # At the meeting: answers are closed, attendance is taken, the meeting is concluded.
        clock.set(start + timedelta(minutes=10))
        r = await client.post(f"/rsvp/{accept}", json={"response": "declined", "reason": "x"})
        assert r.status_code == 410 and "expired" in r.json()["detail"]
        r = await client.post(f"/meetings/{meeting_id}/attendance", headers=auth,
                              json={"invitation_ids": [accept_id, delegate_id]})
        assert r.status_code == 200, r.text
        r = await client.post(f"/meetings/{meeting_id}/conclude", headers=auth)
        assert r.status_code == 200 and r.json()["status"] == "concluded"
        r = await client.post(f"/meetings/{meeting_id}/conclude", headers=auth)
        assert r.status_code == 409

    concluded = (await published(CONCLUDED))[0]["payload"]
    attendance = {a["region_code"]: a["attendees"] for a in concluded["attendance"]}
    assert len(attendance) == 10
    assert [a["invitation_id"] for a in attendance["52.01"]] == [accept_id]
    assert attendance["52.03"][0]["delegate_for"] == "kepala_bpkad" and attendance["52.03"][0]["role"] == "delegate"
    assert sum(len(a) for a in attendance.values()) == 2

    expected = Counter({ISSUED: 31, RESPONDED: 5, REMINDER: 58, CONCLUDED: 1,
                        "ntb.invitations.meeting.scheduled.v1": 1})
    records = await read_topic(topic_prefix + INVITATIONS_EVENTS, expect=sum(expected.values()))
    assert Counter(dict(r.headers)["ce_type"].decode() for r in records) == expected
    assert {r.key.decode() for r in records} == {meeting_id}


async def _reminders(published, count):
    found = [e["payload"] for e in await published(REMINDER)]
    return found if len(found) >= count else None


async def test_changing_a_delegation_withdraws_the_delegate(start_service, clock, schema_for, topic_prefix, db,
                                                            published):
    """Re-sending the same delegation is a no-op; answering again withdraws the delegate's invitation."""
    rt, app = await start_service()
    schema = schema_for("inv")
    client, auth = await organizer_client(rt, app)
    async with client:
        await scheduled_and_invited(client, auth, clock.now + timedelta(days=10))
        _, token = (await tokens_by_seat(db, schema, topic_prefix))[("52.71", "sekda")]
        first = await client.post(f"/rsvp/{token}", json={"response": "delegated", "delegate": DELEGATE})
        again = await client.post(f"/rsvp/{token}", json={"response": "delegated", "delegate": DELEGATE})
        assert first.json()["delegate_invitation_id"] == again.json()["delegate_invitation_id"]
        assert len(await published(RESPONDED)) == 1
        delegate_event = next(e["payload"] for e in await published(ISSUED) if e["payload"]["delegated_from"])
        delegate_token = delegate_event["rsvp_url"].rsplit("/", 1)[-1]
        r = await client.post(f"/rsvp/{delegate_token}", json={"response": "delegated", "delegate": DELEGATE})
        assert r.status_code == 422 and "cannot delegate" in r.json()["detail"]

        r = await client.post(f"/rsvp/{token}", json={"response": "accepted"})
        assert r.status_code == 200 and r.json()["delegate_invitation_id"] is None
        r = await client.post(f"/rsvp/{delegate_token}", json={"response": "accepted"})
        assert r.status_code == 410 and "withdrawn" in r.json()["detail"]
    pending = await db.fetchval(
        f'SELECT count(*) FROM "{schema}".timers WHERE key LIKE $1 AND cancelled_at IS NULL',
        f"%:{delegate_event['invitation_id']}:%")
    assert pending == 0
    history = await db.fetch(f'SELECT response, previous_response FROM "{schema}".responses ORDER BY id')
    assert [(h["response"], h["previous_response"]) for h in history] == [("delegated", None),
                                                                          ("accepted", "delegated")]
