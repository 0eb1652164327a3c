"""Inbound events (Rakor concluded, submissions from regional systems, BPJS realization) and deadline timers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.contracts.commitments import RealizationReported, SubmitCommitment
from shared.contracts.common import MeetingInfo
from shared.contracts.invitations import MeetingConcluded, RegionAttendance
from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS, COMMITMENTS_INBOUND, INVITATIONS_EVENTS, REALIZATION_INBOUND, dlq
from shared.platform.envelope import CloudEvent

from ..conftest import eventually, published_events, read_topic
from .helpers import bpu_commitment, event_types, publish, running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


def _concluded() -> MeetingConcluded:
    start = datetime.now(UTC) - timedelta(hours=3)
    meeting_id = uuid.uuid4()
    info = MeetingInfo(meeting_id=str(meeting_id), title="Rakor", starts_at=start, ends_at=start + timedelta(hours=2),
                       organizer="Wakil Gubernur NTB")
    return MeetingConcluded(meeting_id=meeting_id, meeting=info, concluded_at=start + timedelta(hours=2),
                            attendance=[RegionAttendance(region_code=code) for code in regions()])


def _submission(submission_id: str, **overrides) -> SubmitCommitment:
    return SubmitCommitment.model_validate(bpu_commitment(**overrides) | {"submission_id": submission_id})


async def _count(db, schema: str, sql: str, *args):
    return await db.fetchval(f'SELECT count(*) FROM "{schema}".{sql}', *args)


async def test_rakor_concluded_opens_a_request_per_region_once(topic_prefix, schema_for, db):
    """The invitations event opens ten requests with the configured deadline; a redelivery opens none."""
    schema = schema_for("com")
    async with running(topic_prefix, schema, deadline_days=14):
        event = _concluded()
        cloud = CloudEvent.new(source="/ntb/rakor/invitations", type=MeetingConcluded.event_type,
                               data=event.model_dump_json().encode())
        again = CloudEvent.new(source="/ntb/rakor/invitations", type=MeetingConcluded.event_type, data=cloud.data)
        await publish(topic_prefix + INVITATIONS_EVENTS, [cloud, cloud, again])
        await eventually(lambda: _count(db, schema, "inbox"), timeout=20)
        await eventually(lambda: _count(db, schema, "commitments"), timeout=20)
        rows = await db.fetch(f'SELECT * FROM "{schema}".commitments')
        assert sorted(r["region_code"] for r in rows) == sorted(regions())
        assert {r["deadline"] for r in rows} == {event.concluded_at + timedelta(days=14)}
        assert {r["meeting_id"] for r in rows} == {event.meeting_id}
        await eventually(lambda: _inbox_is(db, schema, 2), timeout=20)  # both distinct event ids consumed
        assert await _count(db, schema, "commitments") == 10
        assert len(await published_events(db, schema, topic_prefix + COMMITMENTS_EVENTS)) == 10
        # Each request has its reminders (7 and 1 days before) and its overdue timer.
        assert await _count(db, schema, "timers") == 30


async def _handled(svc, n):
    return sum(svc.runtime.consumers[0].counts.values()) >= n


async def _inbox_is(db, schema, n):
    return await _count(db, schema, "inbox") == n


async def test_submission_arrives_as_an_event_from_another_system(topic_prefix, schema_for, db):
    """A SubmitCommitment event submits once; its duplicate is a no-op; refusals are dead letters with reasons."""
    schema = schema_for("com")
    async with running(topic_prefix, schema) as svc:
        await svc.open("52.04", "52.05")
        bad_totals = _submission("sipd-2", region="52.05").model_copy(update={"total_rp": 1})
        wrong_year = _submission("sipd-3", region="52.05", fiscal_year=2025)
        no_request = _submission("sipd-4", region="52.06")
        await publish(topic_prefix + COMMITMENTS_INBOUND, [
            _submission("sipd-1"), _submission("sipd-1"), bad_totals, wrong_year, no_request])
        row = await eventually(lambda: db.fetchrow(
            f'SELECT * FROM "{schema}".commitments WHERE region_code = $1 AND status = $2', "52.04", "submitted"))
        assert row["revision"] == 1 and row["total_rp"] == 3_024_000_000
        dead = await read_topic(dlq(topic_prefix + COMMITMENTS_INBOUND), expect=3, timeout=20)
        reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
        assert len(reasons) == 3, reasons
        assert any("expected Rp3.024.000.000" in r for r in reasons)
        assert any("fiscal_year 2025" in r for r in reasons)
        assert any("no commitment request is open for region 52.06" in r for r in reasons)
        await eventually(lambda: _handled(svc, 5), timeout=20)
        assert svc.runtime.consumers[0].counts == {"applied": 2, "dead_lettered": 3}
        assert await _count(db, schema, "submissions") == 1
        sub = await db.fetchrow(f'SELECT * FROM "{schema}".submissions')
        assert sub["channel"] == "event" and sub["submitted_by"] == "/sipd/test"
        assert await db.fetchval(f'SELECT status FROM "{schema}".commitments WHERE region_code = $1',
                                 "52.05") == "requested"
        # Duplicates of inbound events changed nothing: one submitted event for 52.04.
        types = await event_types(topic_prefix + COMMITMENTS_EVENTS, 3)
        assert types.count("submitted") == 1


async def test_overdue_escalation_and_extension_move_the_timers(topic_prefix, schema_for, db):
    """Reminder before the deadline; an extension moves reminder and overdue; after the new deadline: escalation."""
    schema = schema_for("com")
    async with running(topic_prefix, schema, deadline_reminder_leads=["P1D", "PT1H"]) as svc:
        start = svc.clock.now
        cid = (await svc.open("52.07", deadline=start + timedelta(days=3)))["52.07"]
        svc.clock.advance(timedelta(days=2, minutes=1))  # past the 1-day reminder
        await eventually(lambda: _fired(db, schema, "commitments.deadline_reminder", 1), timeout=10)
        r = await svc.client.post(f"/commitments/{cid}/deadline", headers=await svc.auth(Role.ORGANIZER),
                                  json={"deadline": (start + timedelta(days=5)).isoformat(), "reason": "Surat Bupati"})
        assert r.status_code == 200 and r.json()["deadline"].endswith("+08:00"), r.text
        svc.clock.advance(timedelta(days=1, hours=1))  # past the old deadline, before the new reminders
        await asyncio.sleep(0.5)  # several polls of the wheel
        assert await db.fetchval(f'SELECT overdue_at FROM "{schema}".commitments') is None
        assert not await _fired(db, schema, "commitments.deadline_overdue", 1)
        assert not await _fired(db, schema, "commitments.deadline_reminder", 1)  # re-armed by the extension
        svc.clock.advance(timedelta(days=1))  # one day before the new deadline
        await eventually(lambda: _fired(db, schema, "commitments.deadline_reminder", 1), timeout=10)
        svc.clock.advance(timedelta(days=1))  # past the new deadline
        await eventually(lambda: _fired(db, schema, "commitments.deadline_overdue", 1), timeout=10)
        view = (await svc.client.get("/commitments/52.07", headers=await svc.auth(Role.OPERATOR))).json()
        assert view["overdue_since"] is not None and view["status"] == "requested"
        audit = await db.fetch(f'SELECT action, reason FROM "{schema}".audit_log ORDER BY id')
        assert [a["action"] for a in audit] == ["request", "extend_deadline", "escalate_overdue"]
        types = await eventually(lambda: _at_least(topic_prefix, 5), timeout=20)
        assert types == ["requested", "approaching", "extended", "approaching", "overdue"]
        summary = (await svc.client.get("/summary", headers=await svc.auth(Role.OPERATOR))).json()
        assert summary["province"]["regions_overdue"] == 1
        # The 1-hour reminder came due only after the deadline (clock jumped): fired silently, no event.
        assert await _count(db, schema, "timers WHERE fired_at IS NOT NULL") == 3


async def _fired(db, schema, kind, n):
    return await db.fetchval(f'SELECT count(*) FROM "{schema}".timers WHERE kind = $1 AND fired_at IS NOT NULL',
                             kind) >= n


async def _at_least(prefix, n):
    types = await event_types(prefix + COMMITMENTS_EVENTS, n)
    return types if len(types) >= n else None


async def test_realization_is_tracked_against_the_commitment(topic_prefix, schema_for, db):
    """BPJS reports per segment and month update realized workers; a resent report changes nothing."""
    schema = schema_for("com")
    async with running(topic_prefix, schema) as svc:
        await svc.open("52.04")
        assert (await svc.submit("52.04", bpu_commitment())).status_code == 200

        def report(report_id, month, workers, paid, **kw):
            return RealizationReported(**({"report_id": report_id, "region_code": "52.04", "fiscal_year": 2026,
                                           "segment": "pekerja_rentan_bpu", "period": date(2026, month, 1),
                                           "workers_enrolled": workers, "contributions_paid_rp": paid} | kw))

        await publish(topic_prefix + REALIZATION_INBOUND, [
            report("r-jan", 1, 5_000, 84_000_000), report("r-feb", 2, 6_000, 100_800_000),
            report("r-feb", 2, 6_000, 100_800_000),  # a resend with a new event id
            report("r-desa", 2, 400, 6_720_000, segment="perangkat_desa"),
            report("r-2025", 12, 10, 10, fiscal_year=2025, period=date(2025, 12, 1)),
        ])
        await eventually(lambda: _handled(svc, 5), timeout=20)
        assert svc.runtime.consumers[0].counts == {"applied": 4, "dead_lettered": 1}
        summary = (await svc.client.get("/summary", headers=await svc.auth(Role.OPERATOR))).json()
        sumbawa = next(r for r in summary["regions"] if r["region_code"] == "52.04")
        assert sumbawa["realized_workers"] == 6_400  # latest month per segment
        assert sumbawa["contributions_paid_rp"] == 84_000_000 + 100_800_000 + 6_720_000
        assert sumbawa["committed_workers"] == 15_000 and sumbawa["realized_percent_of_committed"] == "42.67"
        assert summary["province"]["realized_workers"] == 6_400
        dead = await read_topic(dlq(topic_prefix + REALIZATION_INBOUND), expect=1, timeout=20)
        assert "fiscal_year 2025" in dict(dead[0].headers)["dlq_reason"].decode()
        types = await event_types(topic_prefix + COMMITMENTS_EVENTS, 5)
        assert types.count("recorded") == 3
