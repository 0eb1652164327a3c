"""What the organizer, invitees and timers do, each inside the caller's unit of work.

Every use case is `async def verb(uow, ...)`: `uow.store` reads and writes, `uow.emit` puts events
in the outbox (correlated with what started the work), `uow.now` is when it happens and `uow.actor`
who asks. What comes from the settings arrives as one `Config`.

Every command on a meeting locks its row first: all events of a meeting share its Kafka key, and
the lock makes them enter the outbox in commit order. Rule violations raise the shared refusals
(shared.platform.errors, via `domain`) before anything is written; the unit of work rolls back
whatever a failing command touched.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from shared.contracts.common import Contact
from shared.contracts.invitations import (
    Attendee,
    InvitationIssued,
    InvitationRescheduled,
    InvitationResponded,
    MeetingCancelled,
    MeetingConcluded,
    MeetingRescheduled,
    MeetingScheduled,
    RegionAttendance,
    ReminderDue,
)
from shared.contracts.regions import regions
from shared.platform.logging import get_logger
from shared.platform.timers import TimerContext
from shared.platform.unit_of_work import UnitOfWork

from . import directory, domain
from .config import Config
from .payloads import calendar_uid, contact, meeting_info
from .store import Store

log = get_logger(__name__)


async def _meeting(uow: UnitOfWork[Store], meeting_id: uuid.UUID) -> asyncpg.Record:
    meeting = await uow.store.lock_meeting(meeting_id)
    if meeting is None:
        raise domain.NotFound(f"no meeting {meeting_id}")
    return meeting


async def _arm_reminders(uow: UnitOfWork[Store], config: Config, meeting: asyncpg.Record, invitation_id: uuid.UUID, *,
                         rearm: bool) -> None:
    for lead, due in domain.reminder_times(meeting["starts_at"], config.reminder_leads, uow.now):
        key = domain.reminder_key(meeting["meeting_id"], invitation_id, lead)
        await uow.store.arm_reminder(key, due, {"invitation_id": str(invitation_id), "lead": lead}, rearm=rearm)


async def _disarm_reminders(uow: UnitOfWork[Store], meeting_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
    await uow.store.cancel_reminders(f"{meeting_id}:{invitation_id}:")


async def _announce(uow: UnitOfWork[Store], config: Config, meeting: asyncpg.Record,
                    invitation: asyncpg.Record) -> None:
    await uow.emit(InvitationIssued(
        invitation_id=invitation["invitation_id"], meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        rsvp_url=config.link(invitation), rsvp_expires_at=invitation["rsvp_expires_at"],
        delegated_from=invitation["delegated_from"], calendar_uid=calendar_uid(meeting),
        calendar_sequence=meeting["sequence"],
    ))
    await _arm_reminders(uow, config, meeting, invitation["invitation_id"], rearm=False)


# ---- meetings ----------------------------------------------------------------------------------


async def schedule(uow: UnitOfWork[Store], *, idempotency_key: str | None, **fields: Any) -> asyncpg.Record:
    """A new meeting, announced; a repeated idempotency key returns the meeting it created."""
    meeting = domain.schedule_meeting(**fields, now=uow.now)
    if not await uow.store.insert_meeting(meeting, created_by=uow.actor.id, idempotency_key=idempotency_key):
        return await uow.store.meeting_by_key(idempotency_key or "")
    event = await uow.emit(MeetingScheduled(
        meeting_id=meeting.meeting_id, title=meeting.title, agenda=meeting.agenda, starts_at=meeting.starts_at,
        ends_at=meeting.ends_at, venue=meeting.venue, online_url=meeting.online_url, organizer=meeting.organizer))
    log.info("meeting scheduled", meeting_id=str(meeting.meeting_id), event_id=event.id, event_type=event.type,
             correlation_id=event.correlation_id, principal=uow.actor.id)
    return await uow.store.get_meeting(meeting.meeting_id)


async def issue_invitations(uow: UnitOfWork[Store], config: Config, meeting_id: uuid.UUID) -> dict[str, int]:
    """One invitation per directory seat; seats already invited are left alone (idempotent)."""
    meeting = await _meeting(uow, meeting_id)
    domain.ensure_can_issue(meeting["status"], meeting["starts_at"], uow.now)
    invitees = await uow.store.list_invitees()
    deadline = domain.rsvp_deadline(meeting["starts_at"], uow.now, config.rsvp_closes_before)
    if not invitees:
        raise domain.Conflict("the invitee directory is empty; import it first (POST /directory/import)")
    issued = 0
    for invitee in invitees:
        row = await uow.store.insert_invitation(
            invitation_id=uuid.uuid4(), meeting_id=meeting_id, region_code=invitee["region_code"],
            role=invitee["role"], person=dict(invitee), rsvp_expires_at=deadline, now=uow.now)
        if row is not None:
            issued += 1
            await _announce(uow, config, meeting, row)
    total = sum(1 for r in await uow.store.invitations_of(meeting_id) if r["delegated_from"] is None)
    result = {"issued": issued, "already_issued": total - issued, "total": total}
    log.info("invitations issued", meeting_id=str(meeting_id), principal=uow.actor.id, **result)
    return result


async def reschedule(uow: UnitOfWork[Store], config: Config, meeting_id: uuid.UUID, *, starts_at: Any, ends_at: Any,
                     reason: str) -> asyncpg.Record:
    meeting = await _meeting(uow, meeting_id)
    start, end = domain.reschedule(meeting["status"], starts_at, ends_at, uow.now)
    if (start, end) == (meeting["starts_at"], meeting["ends_at"]):
        return meeting  # a retried request: nothing moves, nothing is announced
    moved = await uow.store.move_meeting(meeting_id, start, end,
                                         domain.rsvp_deadline(start, uow.now, config.rsvp_closes_before))
    # Reminders follow the meeting: leads now in the past are dropped, the rest re-armed.
    await uow.store.cancel_reminders(f"{meeting_id}:")
    for invitation in await uow.store.invitations_of(meeting_id):
        if domain.should_remind(meeting_status=moved["status"], invitation_status=invitation["status"],
                                response=invitation["response"], starts_at=moved["starts_at"], now=uow.now):
            await _arm_reminders(uow, config, moved, invitation["invitation_id"], rearm=True)
    event = await uow.emit(MeetingRescheduled(
        meeting=meeting_info(moved), meeting_id=meeting_id, previous_starts_at=meeting["starts_at"], reason=reason,
        calendar_uid=calendar_uid(moved), calendar_sequence=moved["sequence"]))
    # Each person still holding a seat is told in an event of their own with their own link, the
    # path of InvitationIssued: the meeting-wide event above is addressed to everyone, so it carries
    # nobody's token. The links are signed with the new deadline. Written in the same unit of work,
    # so correlated with the request that moved the meeting.
    told = 0
    for invitation in await uow.store.invitations_of(meeting_id):
        if invitation["status"] != "active":
            continue
        await uow.emit(InvitationRescheduled(
            invitation_id=invitation["invitation_id"], meeting_id=meeting_id, meeting=meeting_info(moved),
            previous_starts_at=meeting["starts_at"], reason=reason, region_code=invitation["region_code"],
            role=invitation["role"], invitee=contact(invitation), rsvp_url=config.link(invitation),
            rsvp_expires_at=invitation["rsvp_expires_at"], response=invitation["response"],
            calendar_uid=calendar_uid(moved), calendar_sequence=moved["sequence"]))
        told += 1
    log.info("meeting rescheduled", meeting_id=str(meeting_id), invitees_told=told, event_id=event.id,
             principal=uow.actor.id)
    return moved


async def cancel(uow: UnitOfWork[Store], meeting_id: uuid.UUID, *, reason: str) -> asyncpg.Record:
    meeting = await _meeting(uow, meeting_id)
    domain.ensure_scheduled(meeting["status"])
    cancelled = await uow.store.cancel_meeting(meeting_id, reason, uow.now)
    await uow.store.cancel_reminders(f"{meeting_id}:")
    await uow.emit(MeetingCancelled(
        meeting=meeting_info(cancelled), meeting_id=meeting_id, reason=reason,
        calendar_uid=calendar_uid(cancelled), calendar_sequence=cancelled["sequence"]))
    log.info("meeting cancelled", meeting_id=str(meeting_id), principal=uow.actor.id)
    return cancelled


async def record_attendance(uow: UnitOfWork[Store], meeting_id: uuid.UUID, invitation_ids: list[uuid.UUID], *,
                            attended: bool) -> list[uuid.UUID]:
    meeting = await _meeting(uow, meeting_id)
    domain.ensure_can_record_attendance(meeting["status"], meeting["starts_at"], uow.now)
    updated = await uow.store.mark_attended(meeting_id, invitation_ids, attended, uow.now)
    unknown = sorted(str(i) for i in set(invitation_ids) - set(updated))
    if unknown:
        raise domain.Invalid(f"not active invitations of this meeting: {', '.join(unknown)}")
    log.info("attendance recorded", meeting_id=str(meeting_id), count=len(updated), principal=uow.actor.id)
    return updated


async def conclude(uow: UnitOfWork[Store], meeting_id: uuid.UUID) -> asyncpg.Record:
    """The meeting concluded: attendance becomes final and is published per region."""
    meeting = await _meeting(uow, meeting_id)
    domain.ensure_can_conclude(meeting["status"], meeting["starts_at"], uow.now)
    rows = await uow.store.invitations_of(meeting_id)
    role_of = {r["invitation_id"]: r["role"] for r in rows}
    seats = [domain.Seat(r["invitation_id"], r["region_code"], r["role"], r["name"], r["title"], r["attended"],
                         role_of.get(r["delegated_from"])) for r in rows]
    by_region = domain.attendance_by_region(list(regions()), seats)
    concluded = await uow.store.conclude_meeting(meeting_id, uow.now)
    await uow.store.cancel_reminders(f"{meeting_id}:")
    await uow.emit(MeetingConcluded(
        meeting_id=meeting_id, meeting=meeting_info(concluded), concluded_at=uow.now,
        attendance=[RegionAttendance(region_code=code, attendees=[
            Attendee(invitation_id=s.invitation_id, role=s.role, name=s.name, title=s.title,
                     delegate_for=s.delegate_for) for s in seats_]) for code, seats_ in by_region.items()]))
    log.info("meeting concluded", meeting_id=str(meeting_id), principal=uow.actor.id)
    return concluded


# ---- the invitee directory ---------------------------------------------------------------------


async def import_directory(uow: UnitOfWork[Store], entries: list[directory.DirectoryEntry], *, replace: bool) -> int:
    """Seats written; with `replace`, seats edited through the API are overwritten too."""
    written = 0
    for entry in entries:
        written += await uow.store.put_invitee(entry.model_dump(), updated_by=uow.actor.id, overwrite=replace)
    log.info("directory imported", written=written, principal=uow.actor.id)
    return written


async def set_invitee(uow: UnitOfWork[Store], region_code: str, role: str,
                      details: directory.InviteeDetails) -> asyncpg.Record:
    """A seat's official, for invitations issued from now on."""
    await uow.store.put_invitee({**details.model_dump(), "region_code": region_code, "role": role},
                                updated_by=uow.actor.id)
    log.info("directory entry set", region_code=region_code, role=role, principal=uow.actor.id)
    return await uow.store.get_invitee(region_code, role)


# ---- RSVP --------------------------------------------------------------------------------------


def _delegate_key(person: Contact | asyncpg.Record | None) -> tuple[str, ...] | None:
    if person is None:
        return None
    get = (lambda k: getattr(person, k)) if isinstance(person, Contact) else (lambda k: person[k])
    return tuple(str(get(k) or "") for k in ("name", "title", "email", "phone"))


async def answer(uow: UnitOfWork[Store], config: Config, invitation_id: uuid.UUID, *, response: str, reason: str,
                 delegate: Contact | None) -> dict[str, Any]:
    """Accept, decline or delegate; a changed answer is recorded with the previous one."""
    store, now = uow.store, uow.now
    found = await store.get_invitation(invitation_id)
    if found is None:
        raise domain.NotFound("no such invitation")
    meeting = await _meeting(uow, found["meeting_id"])
    invitation = await store.get_invitation(invitation_id)  # re-read under the meeting lock
    if invitation is None:  # cannot happen (invitations are never deleted): a 404 rather than a crash
        raise domain.NotFound("no such invitation")
    previous_delegate = (await store.get_invitation(invitation["delegate_invitation_id"])
                         if invitation["delegate_invitation_id"] else None)
    current = (domain.Answer(invitation["response"], invitation["reason"], _delegate_key(previous_delegate))
               if invitation["response"] else None)
    new = domain.Answer(response, reason if response == "declined" else "", _delegate_key(delegate))
    count, last_at = await store.delegations_of(invitation_id)
    if meeting["status"] == "scheduled" and invitation["status"] == "active":
        domain.ensure_before_deadline(invitation["rsvp_expires_at"], now)
    if not domain.decide_answer(
            meeting_status=meeting["status"], starts_at=meeting["starts_at"], now=now,
            invitation_status=invitation["status"], role=invitation["role"], current=current, new=new,
            invitee=domain.Person(invitation["name"], invitation["email"], invitation["phone"]),
            delegate=domain.Person(delegate.name, delegate.email, delegate.phone) if delegate else None,
            history=domain.DelegationHistory(count, last_at), policy=config.delegation):
        return {"changed": False, "delegate_invitation_id": invitation["delegate_invitation_id"]}
    if previous_delegate is not None:
        # The official answered again: the delegate they named earlier no longer holds the seat.
        await store.withdraw_invitation(previous_delegate["invitation_id"])
        await _disarm_reminders(uow, meeting["meeting_id"], previous_delegate["invitation_id"])
    delegate_row = None
    if delegate is not None:
        delegate_row = await store.insert_invitation(
            invitation_id=uuid.uuid4(), meeting_id=meeting["meeting_id"], region_code=invitation["region_code"],
            role="delegate", person=delegate.model_dump(), rsvp_expires_at=invitation["rsvp_expires_at"], now=now,
            delegated_from=invitation_id)
    delegate_id = delegate_row["invitation_id"] if delegate_row is not None else None
    await store.record_answer(
        invitation_id, response=response, reason=new.reason,
        delegate=delegate.model_dump(mode="json") if delegate else None, delegate_invitation_id=delegate_id,
        previous_response=invitation["response"], now=now)
    if response == "accepted":
        await _arm_reminders(uow, config, meeting, invitation_id, rearm=False)
    else:  # declined, or the delegate is reminded instead
        await _disarm_reminders(uow, meeting["meeting_id"], invitation_id)
    event = await uow.emit(InvitationResponded(
        invitation_id=invitation_id, meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        response=response, reason=new.reason, delegate=delegate, previous_response=invitation["response"],
        responded_at=now))
    if delegate_row is not None:
        await _announce(uow, config, meeting, delegate_row)
    log.info("invitation answered", invitation_id=str(invitation_id), meeting_id=str(meeting["meeting_id"]),
             response=response, previous_response=invitation["response"], region_code=invitation["region_code"],
             event_id=event.id)
    return {"changed": True, "delegate_invitation_id": delegate_id}


# ---- timers ------------------------------------------------------------------------------------


async def fire_reminder(uow: TimerContext, config: Config) -> None:
    """ReminderDue for an invitee still expected; state is checked again, since it may have changed."""
    timer, store = uow.timer, uow.store
    invitation_id = uuid.UUID(timer.payload["invitation_id"])
    invitation = await store.get_invitation(invitation_id)
    if invitation is None:
        log.warning("reminder for an unknown invitation skipped", invitation_id=str(invitation_id))
        return
    meeting = await _meeting(uow, invitation["meeting_id"])
    invitation = await store.get_invitation(invitation_id)
    if not domain.should_remind(meeting_status=meeting["status"], invitation_status=invitation["status"],
                                response=invitation["response"], starts_at=meeting["starts_at"], now=uow.now):
        log.info("reminder skipped", invitation_id=str(invitation_id), response=invitation["response"],
                 meeting_status=meeting["status"])
        return
    event = await uow.emit(ReminderDue(
        invitation_id=invitation_id, meeting_id=meeting["meeting_id"], meeting=meeting_info(meeting),
        region_code=invitation["region_code"], role=invitation["role"], invitee=contact(invitation),
        # The link goes to everyone reminded: an official who accepted may still decline or delegate.
        lead=timer.payload["lead"], rsvp_url=config.link(invitation), response=invitation["response"]))
    log.info("reminder due", invitation_id=str(invitation_id), meeting_id=str(meeting["meeting_id"]),
             lead=timer.payload["lead"], region_code=invitation["region_code"], event_id=event.id)
