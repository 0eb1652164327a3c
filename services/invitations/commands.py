"""What the organizer, invitees and timers do, each inside the caller's transaction.

Every command locks the meeting row first: all events of a meeting share its Kafka key,
and the lock makes them enter the outbox in commit order. Rule violations raise
`domain.DomainError` subclasses before anything is written; the caller's transaction
rolls back whatever a failing command touched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.platform import timers
from shared.contracts.common import Contact
from shared.contracts.invitations import (Attendee, InvitationIssued, InvitationRescheduled, InvitationResponded,
                                          MeetingCancelled, MeetingConcluded, MeetingRescheduled, RegionAttendance,
                                          ReminderDue)
from shared.platform.logging import get_logger
from shared.platform.outbox import Outbox
from shared.contracts.regions import regions

from . import domain, store, tokens
from .payloads import calendar_uid, contact, meeting_info, rsvp_url
from .settings import InvitationsSettings

log = get_logger(__name__)

REMINDER = "invitations.reminder"


@dataclass(frozen=True, slots=True)
class Deps:
    outbox: Outbox
    settings: InvitationsSettings

    @property
    def secret(self) -> bytes:
        return self.settings.rsvp_secret.get_secret_value().encode()

    def link(self, invitation: asyncpg.Record) -> str:
        token = tokens.issue(self.secret, invitation["invitation_id"], invitation["rsvp_expires_at"])
        return rsvp_url(self.settings.public_base_url, token)


async def _meeting(conn: asyncpg.Connection, meeting_id: uuid.UUID) -> asyncpg.Record:
    meeting = await store.lock_meeting(conn, meeting_id)
    if meeting is None:
        raise domain.NotFound(f"no meeting {meeting_id}")
    return meeting


async def _arm_reminders(conn: asyncpg.Connection, deps: Deps, meeting: asyncpg.Record, invitation_id: uuid.UUID,
                         now: datetime, *, rearm: bool) -> None:
    for lead, due in domain.reminder_times(meeting["starts_at"], deps.settings.reminder_leads, now):
        key = domain.reminder_key(meeting["meeting_id"], invitation_id, lead)
        await timers.schedule(conn, REMINDER, key, due, {"invitation_id": str(invitation_id), "lead": lead},
                              rearm=rearm)


async def _disarm_reminders(conn: asyncpg.Connection, meeting_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
    await timers.cancel(conn, REMINDER, f"{meeting_id}:{invitation_id}:")


async def _announce(conn: asyncpg.Connection, deps: Deps, meeting: asyncpg.Record, invitation: asyncpg.Record,
                    now: datetime, **trace: str | None) -> None:
    await deps.outbox.add(conn, InvitationIssued(
        invitation_id=invitation["invitation_id"], meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        rsvp_url=deps.link(invitation), rsvp_expires_at=invitation["rsvp_expires_at"],
        delegated_from=invitation["delegated_from"], calendar_uid=calendar_uid(meeting),
        calendar_sequence=meeting["sequence"],
    ), **trace)
    await _arm_reminders(conn, deps, meeting, invitation["invitation_id"], now, rearm=False)


async def issue_invitations(conn: asyncpg.Connection, deps: Deps, meeting_id: uuid.UUID,
                            now: datetime) -> dict[str, int]:
    """One invitation per directory seat; seats already invited are left alone (idempotent)."""
    meeting = await _meeting(conn, meeting_id)
    domain.ensure_can_issue(meeting["status"], meeting["starts_at"], now)
    invitees = await store.list_invitees(conn)
    deadline = domain.rsvp_deadline(meeting["starts_at"], now, deps.settings.rsvp_closes_before)
    if not invitees:
        raise domain.Conflict("the invitee directory is empty; import it first (POST /directory/import)")
    issued = 0
    for invitee in invitees:
        row = await store.insert_invitation(
            conn, invitation_id=uuid.uuid4(), meeting_id=meeting_id, region_code=invitee["region_code"],
            role=invitee["role"], person=dict(invitee), rsvp_expires_at=deadline, now=now)
        if row is not None:
            issued += 1
            await _announce(conn, deps, meeting, row, now)
    total = sum(1 for r in await store.invitations_of(conn, meeting_id) if r["delegated_from"] is None)
    return {"issued": issued, "already_issued": total - issued, "total": total}


async def reschedule(conn: asyncpg.Connection, deps: Deps, meeting_id: uuid.UUID, *, starts_at: datetime,
                     ends_at: datetime, reason: str, now: datetime) -> asyncpg.Record:
    meeting = await _meeting(conn, meeting_id)
    start, end = domain.reschedule(meeting["status"], starts_at, ends_at, now)
    if (start, end) == (meeting["starts_at"], meeting["ends_at"]):
        return meeting  # a retried request: nothing moves, nothing is announced
    moved = await store.move_meeting(conn, meeting_id, start, end,
                                     domain.rsvp_deadline(start, now, deps.settings.rsvp_closes_before))
    # Reminders follow the meeting: leads now in the past are dropped, the rest re-armed.
    await timers.cancel(conn, REMINDER, f"{meeting_id}:")
    for invitation in await store.invitations_of(conn, meeting_id):
        if domain.should_remind(meeting_status=moved["status"], invitation_status=invitation["status"],
                                response=invitation["response"], starts_at=moved["starts_at"], now=now):
            await _arm_reminders(conn, deps, moved, invitation["invitation_id"], now, rearm=True)
    event = await deps.outbox.add(conn, MeetingRescheduled(
        meeting=meeting_info(moved), meeting_id=meeting_id, previous_starts_at=meeting["starts_at"], reason=reason,
        calendar_uid=calendar_uid(moved), calendar_sequence=moved["sequence"]))
    # Each person still holding a seat is told in an event of their own with their own link, the
    # path of InvitationIssued: the meeting-wide event above is addressed to everyone, so it carries
    # nobody's token. The links are signed with the new deadline.
    trace = {"correlation_id": event.correlation_id, "causation_id": event.id}
    told = [(InvitationRescheduled(
        invitation_id=invitation["invitation_id"], meeting_id=meeting_id, meeting=meeting_info(moved),
        previous_starts_at=meeting["starts_at"], reason=reason, region_code=invitation["region_code"],
        role=invitation["role"], invitee=contact(invitation), rsvp_url=deps.link(invitation),
        rsvp_expires_at=invitation["rsvp_expires_at"], response=invitation["response"],
        calendar_uid=calendar_uid(moved), calendar_sequence=moved["sequence"],
    ), trace) for invitation in await store.invitations_of(conn, meeting_id) if invitation["status"] == "active"]
    await deps.outbox.add_many(conn, told)
    log.info("meeting rescheduled", meeting_id=str(meeting_id), invitees_told=len(told), event_id=event.id)
    return moved


async def cancel(conn: asyncpg.Connection, deps: Deps, meeting_id: uuid.UUID, *, reason: str,
                 now: datetime) -> asyncpg.Record:
    meeting = await _meeting(conn, meeting_id)
    domain.ensure_scheduled(meeting["status"])
    cancelled = await store.cancel_meeting(conn, meeting_id, reason, now)
    await timers.cancel(conn, REMINDER, f"{meeting_id}:")
    await deps.outbox.add(conn, MeetingCancelled(
        meeting=meeting_info(cancelled), meeting_id=meeting_id, reason=reason,
        calendar_uid=calendar_uid(cancelled), calendar_sequence=cancelled["sequence"]))
    return cancelled


def _delegate_key(person: Contact | asyncpg.Record | None) -> tuple[str, ...] | None:
    if person is None:
        return None
    get = (lambda k: getattr(person, k)) if isinstance(person, Contact) else (lambda k: person[k])
    return tuple(str(get(k) or "") for k in ("name", "title", "email", "phone"))


async def answer(conn: asyncpg.Connection, deps: Deps, invitation_id: uuid.UUID, *, response: str, reason: str,
                 delegate: Contact | None, now: datetime) -> dict[str, Any]:
    """Accept, decline or delegate; a changed answer is recorded with the previous one."""
    found = await store.get_invitation(conn, invitation_id)
    if found is None:
        raise domain.NotFound("no such invitation")
    meeting = await _meeting(conn, found["meeting_id"])
    invitation = await store.get_invitation(conn, invitation_id)  # re-read under the meeting lock
    previous_delegate = (await store.get_invitation(conn, invitation["delegate_invitation_id"])
                         if invitation["delegate_invitation_id"] else None)
    current = (domain.Answer(invitation["response"], invitation["reason"], _delegate_key(previous_delegate))
               if invitation["response"] else None)
    new = domain.Answer(response, reason if response == "declined" else "", _delegate_key(delegate))
    count, last_at = await store.delegations_of(conn, invitation_id)
    if meeting["status"] == "scheduled" and invitation["status"] == "active":
        domain.ensure_before_deadline(invitation["rsvp_expires_at"], now)
    if not domain.decide_answer(
            meeting_status=meeting["status"], starts_at=meeting["starts_at"], now=now,
            invitation_status=invitation["status"], role=invitation["role"], current=current, new=new,
            invitee=domain.Person(invitation["name"], invitation["email"], invitation["phone"]),
            delegate=domain.Person(delegate.name, delegate.email, delegate.phone) if delegate else None,
            history=domain.DelegationHistory(count, last_at), policy=deps.settings.delegation_policy):
        return {"changed": False, "delegate_invitation_id": invitation["delegate_invitation_id"]}
    if previous_delegate is not None:
        # The official answered again: the delegate they named earlier no longer holds the seat.
        await store.withdraw_invitation(conn, previous_delegate["invitation_id"])
        await _disarm_reminders(conn, meeting["meeting_id"], previous_delegate["invitation_id"])
    delegate_row = None
    if delegate is not None:
        delegate_row = await store.insert_invitation(
            conn, invitation_id=uuid.uuid4(), meeting_id=meeting["meeting_id"], region_code=invitation["region_code"],
            role="delegate", person=delegate.model_dump(), rsvp_expires_at=invitation["rsvp_expires_at"], now=now,
            delegated_from=invitation_id)
    delegate_id = delegate_row["invitation_id"] if delegate_row is not None else None
    await store.record_answer(
        conn, invitation_id, response=response, reason=new.reason,
        delegate=delegate.model_dump(mode="json") if delegate else None, delegate_invitation_id=delegate_id,
        previous_response=invitation["response"], now=now)
    if response == "accepted":
        await _arm_reminders(conn, deps, meeting, invitation_id, now, rearm=False)
    else:  # declined, or the delegate is reminded instead
        await _disarm_reminders(conn, meeting["meeting_id"], invitation_id)
    event = await deps.outbox.add(conn, InvitationResponded(
        invitation_id=invitation_id, meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        response=response, reason=new.reason, delegate=delegate, previous_response=invitation["response"],
        responded_at=now))
    if delegate_row is not None:
        await _announce(conn, deps, meeting, delegate_row, now,
                        correlation_id=event.correlation_id, causation_id=event.id)
    log.info("invitation answered", invitation_id=str(invitation_id), meeting_id=str(meeting["meeting_id"]),
             response=response, previous_response=invitation["response"], region_code=invitation["region_code"],
             event_id=event.id)
    return {"changed": True, "delegate_invitation_id": delegate_id}


async def record_attendance(conn: asyncpg.Connection, meeting_id: uuid.UUID, invitation_ids: list[uuid.UUID],
                            *, attended: bool, now: datetime) -> list[uuid.UUID]:
    meeting = await _meeting(conn, meeting_id)
    domain.ensure_can_record_attendance(meeting["status"], meeting["starts_at"], now)
    updated = await store.mark_attended(conn, meeting_id, invitation_ids, attended, now)
    unknown = sorted(str(i) for i in set(invitation_ids) - set(updated))
    if unknown:
        raise domain.DomainError(f"not active invitations of this meeting: {', '.join(unknown)}")
    return updated


async def conclude(conn: asyncpg.Connection, deps: Deps, meeting_id: uuid.UUID, now: datetime) -> MeetingConcluded:
    meeting = await _meeting(conn, meeting_id)
    domain.ensure_can_conclude(meeting["status"], meeting["starts_at"], now)
    rows = await store.invitations_of(conn, meeting_id)
    role_of = {r["invitation_id"]: r["role"] for r in rows}
    seats = [domain.Seat(r["invitation_id"], r["region_code"], r["role"], r["name"], r["title"], r["attended"],
                         role_of.get(r["delegated_from"])) for r in rows]
    by_region = domain.attendance_by_region(list(regions()), seats)
    concluded = await store.conclude_meeting(conn, meeting_id, now)
    await timers.cancel(conn, REMINDER, f"{meeting_id}:")
    payload = MeetingConcluded(
        meeting_id=meeting_id, meeting=meeting_info(concluded), concluded_at=now,
        attendance=[RegionAttendance(region_code=code, attendees=[
            Attendee(invitation_id=s.invitation_id, role=s.role, name=s.name, title=s.title,
                     delegate_for=s.delegate_for) for s in seats_]) for code, seats_ in by_region.items()])
    await deps.outbox.add(conn, payload)
    return payload


async def fire_reminder(deps: Deps, timer: timers.Timer, ctx: timers.TimerContext) -> None:
    """ReminderDue for an invitee still expected; state is checked again, since it may have changed."""
    invitation_id = uuid.UUID(timer.payload["invitation_id"])
    invitation = await store.get_invitation(ctx.conn, invitation_id)
    if invitation is None:
        log.warning("reminder for an unknown invitation skipped", invitation_id=str(invitation_id))
        return
    meeting = await _meeting(ctx.conn, invitation["meeting_id"])
    invitation = await store.get_invitation(ctx.conn, invitation_id)
    if not domain.should_remind(meeting_status=meeting["status"], invitation_status=invitation["status"],
                                response=invitation["response"], starts_at=meeting["starts_at"], now=ctx.now):
        log.info("reminder skipped", invitation_id=str(invitation_id), response=invitation["response"],
                 meeting_status=meeting["status"])
        return
    event = await ctx.outbox.add(ctx.conn, ReminderDue(
        invitation_id=invitation_id, meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        # The link goes to everyone reminded: an official who accepted may still decline or delegate.
        lead=timer.payload["lead"], rsvp_url=deps.link(invitation), response=invitation["response"]))
    log.info("reminder due", invitation_id=str(invitation_id), meeting_id=str(meeting["meeting_id"]),
             lead=timer.payload["lead"], region_code=invitation["region_code"], event_id=event.id)
