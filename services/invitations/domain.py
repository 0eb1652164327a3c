"""Rules of the Rakor: meetings, RSVP, reminders, attendance.

Pure: no I/O, no clock of its own (callers pass `now`). A broken rule raises one of the
shared refusals (shared.platform.errors): Invalid 422, Conflict 409, Gone 410, NotFound 404,
and TooSoon, a conflict answered with 429.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Re-exported (`X as X`): the refusals sit with the rules, so callers raise and catch `domain.Conflict` etc.
from shared.platform.errors import (
    Conflict as Conflict,
    DomainError as DomainError,
    Gone as Gone,
    Invalid as Invalid,
    NotFound as NotFound,
)
from shared.platform.wita import as_wita

MAX_DURATION = timedelta(days=3)
# The seats every regency/city fills; a delegate fills one of them on someone's behalf.
SEATS = ("sekda", "kepala_bpkad", "kepala_disnaker")
RESPONSES = ("accepted", "declined", "delegated")


class TooSoon(Conflict):
    """Allowed, but not this often: try again later (429)."""

    http_status = 429


@dataclass(frozen=True, slots=True)
class Meeting:
    meeting_id: uuid.UUID
    title: str
    agenda: str
    starts_at: datetime
    ends_at: datetime
    venue: str | None
    online_url: str | None
    organizer: str
    status: str = "scheduled"


def _check_times(start: datetime, end: datetime, now: datetime) -> None:
    if start <= now:
        raise Invalid("starts_at must be in the future")
    if end <= start:
        raise Invalid("ends_at must be after starts_at")
    if end - start > MAX_DURATION:
        raise Invalid("a meeting may last at most 3 days")


def schedule_meeting(
    *,
    title: str,
    agenda: str,
    starts_at: datetime,
    ends_at: datetime,
    venue: str | None,
    online_url: str | None,
    organizer: str,
    now: datetime,
    meeting_id: uuid.UUID | None = None,
) -> Meeting:
    start, end = as_wita(starts_at), as_wita(ends_at)
    _check_times(start, end, now)
    if not (venue or online_url):
        raise Invalid("give a venue, an online link, or both")
    return Meeting(meeting_id or uuid.uuid4(), title, agenda, start, end, venue, online_url, organizer)


def ensure_scheduled(status: str) -> None:
    """Only a scheduled meeting can be changed, invited to or answered."""
    if status == "cancelled":
        raise Gone("the meeting was cancelled")
    if status == "concluded":
        raise Conflict("the meeting has already been concluded")


def rsvp_deadline(starts_at: datetime, now: datetime, closes_before: timedelta) -> datetime:
    """When answers close: `closes_before` ahead of the start, so the organizer knows who comes
    before the day; a meeting called at shorter notice takes answers until it starts."""
    deadline = starts_at - closes_before
    return deadline if deadline > now else starts_at


def ensure_before_deadline(deadline: datetime, now: datetime) -> None:
    if now >= deadline:
        raise Conflict("the RSVP deadline has passed; answers can no longer be changed")


def reschedule(status: str, starts_at: datetime, ends_at: datetime, now: datetime) -> tuple[datetime, datetime]:
    ensure_scheduled(status)
    start, end = as_wita(starts_at), as_wita(ends_at)
    _check_times(start, end, now)
    return start, end


def ensure_can_conclude(status: str, starts_at: datetime, now: datetime) -> None:
    ensure_scheduled(status)
    if now < starts_at:
        raise Conflict(f"the meeting has not started yet (starts {as_wita(starts_at).isoformat()})")


# ---- reminders -------------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_lead(text: str) -> timedelta:
    """An ISO 8601 duration in weeks, days, hours, minutes, seconds (P3D, P1D, PT2M).

    Years and months are refused: their length depends on the calendar, a lead must not.
    """
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"reminder lead {text!r} is not an ISO 8601 duration such as P3D, PT12H or PT2M")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    lead = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if lead <= timedelta(0):
        raise ValueError(f"reminder lead {text!r} must be longer than zero")
    return lead


def reminder_times(starts_at: datetime, leads: Iterable[str], now: datetime) -> list[tuple[str, datetime]]:
    """(lead, due time) for each lead still ahead of `now`; leads already past are skipped."""
    due = [(lead, starts_at - parse_lead(lead)) for lead in leads]
    return [(lead, at) for lead, at in due if at > now]


def reminder_key(meeting_id: uuid.UUID | str, invitation_id: uuid.UUID | str, lead: str) -> str:
    # Prefixes by meeting, then invitation, so both can be cancelled with `timers.cancel`.
    return f"{meeting_id}:{invitation_id}:{lead}"


def should_remind(*, meeting_status: str, invitation_status: str, response: str | None,
                  starts_at: datetime, now: datetime) -> bool:
    """Checked again when the timer fires: the state may have changed since it was set.

    A timer fired late (the service was down past the start) reminds no one.
    """
    return (meeting_status == "scheduled" and invitation_status == "active"
            and response not in ("declined", "delegated") and now < starts_at)


# ---- RSVP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """Who a delegation names, or who holds the invitation: what identifies a person."""

    name: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class DelegationPolicy:
    """Bounds on delegation: each one mails an official invitation under the province's sender to an
    address the link holder chose, so a link must not become a mail relay."""

    max_delegations: int = 3  # delegates one invitation may name over its life (withdrawn ones count)
    min_interval: timedelta = timedelta(minutes=10)  # between two delegations of one invitation
    email_domains: tuple[str, ...] = ("go.id",)  # a delegate's address: under one of these, or the invitee's


@dataclass(frozen=True, slots=True)
class DelegationHistory:
    count: int = 0  # delegates this invitation has named so far
    last_at: datetime | None = None  # when it last named one


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _digits(phone: str | None) -> str:
    return "".join(c for c in phone or "" if c.isdigit()).removeprefix("62").lstrip("0")


def _domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower().rstrip(".")


def _under(domain: str, parent: str) -> bool:
    parent = parent.lower().strip(".")
    return domain == parent or domain.endswith("." + parent)


def check_delegation(*, invitee: Person, delegate: Person, history: DelegationHistory, policy: DelegationPolicy,
                     now: datetime) -> None:
    """Who may be named, how often and how many times; raises with the reason."""
    if (_same_name(invitee.name, delegate.name)
            or (invitee.email and delegate.email and invitee.email.lower() == delegate.email.lower())
            or (_digits(invitee.phone) and _digits(invitee.phone) == _digits(delegate.phone))):
        raise Invalid("you cannot name yourself as your delegate; accept the invitation instead")
    if delegate.email:
        domain = _domain_of(delegate.email)
        allowed = [*policy.email_domains, *([_domain_of(invitee.email)] if invitee.email else [])]
        if not any(_under(domain, parent) for parent in allowed):
            raise Invalid("a delegate's e-mail must be an official address (under "
                              + ", ".join(sorted(set(allowed))) + ")")
    if history.count >= policy.max_delegations:
        raise Conflict(f"this invitation has already named {history.count} delegates, the most allowed; "
                       "ask the organizer to change the delegate")
    if history.last_at is not None and now < history.last_at + policy.min_interval:
        wait = int((history.last_at + policy.min_interval - now).total_seconds() // 60) + 1
        raise TooSoon(f"a delegate was named moments ago; you can name another in about {wait} minute(s)")


@dataclass(frozen=True, slots=True)
class Answer:
    response: str
    reason: str = ""
    delegate_key: tuple[str, ...] | None = None  # what identifies the delegate (name, title, email, phone)


def decide_answer(
    *,
    meeting_status: str,
    starts_at: datetime,
    now: datetime,
    invitation_status: str,
    role: str,
    current: Answer | None,
    new: Answer,
    invitee: Person | None = None,
    delegate: Person | None = None,
    history: DelegationHistory = DelegationHistory(),
    policy: DelegationPolicy = DelegationPolicy(),
) -> bool:
    """Validate an RSVP; True when it changes something, False when it repeats the current answer.

    A new delegation is also held to `check_delegation` (given the invitee and the delegate).
    """
    ensure_scheduled(meeting_status)
    if invitation_status != "active":
        raise Gone("this invitation was withdrawn (the official answered again or named another delegate)")
    if now >= starts_at:
        raise Conflict("the meeting has started; answers can no longer be changed")
    if new.response not in RESPONSES:
        raise Invalid(f"response must be one of {', '.join(RESPONSES)}")
    if new.response == "declined" and not new.reason:
        raise Invalid("give a reason when declining")
    if new.response == "delegated":
        if role == "delegate":
            raise Invalid("a delegate cannot delegate further; the official who invited you can name someone else")
        if new.delegate_key is None:
            raise Invalid("name the delegate (name, title and an e-mail or phone)")
    elif new.delegate_key is not None:
        raise Invalid("a delegate is only given with the response 'delegated'")
    if current == new:
        return False
    if new.response == "delegated":
        if invitee is None or delegate is None:
            raise Invalid("name the delegate (name, title and an e-mail or phone)")
        check_delegation(invitee=invitee, delegate=delegate, history=history, policy=policy, now=now)
    return True


# ---- attendance ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seat:
    invitation_id: uuid.UUID
    region_code: str
    role: str
    name: str
    title: str
    attended: bool
    delegate_for: str | None = None


def attendance_by_region(region_codes: Sequence[str], seats: Iterable[Seat]) -> dict[str, list[Seat]]:
    """Every region listed (in the given order), each with who attended for it."""
    result: dict[str, list[Seat]] = {code: [] for code in region_codes}
    for seat in seats:
        if seat.attended and seat.region_code in result:
            result[seat.region_code].append(seat)
    for code in result:
        result[code].sort(key=lambda s: (SEATS.index(s.delegate_for or s.role) if (s.delegate_for or s.role) in SEATS
                                         else len(SEATS), s.role == "delegate", s.name))
    return result


# Attendance is taken at the registration desk, which opens a little before the start.
ATTENDANCE_OPENS_BEFORE_START = timedelta(hours=2)


def ensure_can_record_attendance(status: str, starts_at: datetime, now: datetime) -> None:
    ensure_scheduled(status)
    if now < starts_at - ATTENDANCE_OPENS_BEFORE_START:
        raise Conflict("attendance opens 2 hours before the start "
                       f"({as_wita(starts_at - ATTENDANCE_OPENS_BEFORE_START).isoformat()})")


def ensure_can_issue(status: str, starts_at: datetime, now: datetime) -> None:
    ensure_scheduled(status)
    if now >= starts_at:
        raise Conflict("the meeting has started; invitations can no longer be issued")
