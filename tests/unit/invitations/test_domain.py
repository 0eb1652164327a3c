"""Rules of the Rakor: schedule, reschedule, reminders, RSVP, attendance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from services.invitations import domain
from services.invitations.domain import Answer, Conflict, DomainError, Gone

NOW = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
START = NOW + timedelta(days=10)


def test_naive_times_are_read_as_wita():
    """A start written without offset is WITA (UTC+8)."""
    meeting = domain.schedule_meeting(title="Rakor", agenda="", starts_at=datetime(2026, 2, 2, 9, 0),
                                      ends_at=datetime(2026, 2, 2, 12, 0), venue="Mataram", online_url=None,
                                      organizer="Wagub", now=NOW)
    assert meeting.starts_at.utcoffset() == timedelta(hours=8)
    assert meeting.starts_at.astimezone(UTC).hour == 1


@pytest.mark.parametrize(("start", "end", "message"), [
    (NOW - timedelta(minutes=1), NOW + timedelta(hours=1), "future"),
    (START, START, "after"),
    (START, START + timedelta(days=4), "3 days"),
])
def test_reschedule_refuses_bad_times(start, end, message):
    """A past start, an end not after the start, or a four-day meeting is refused with the reason."""
    with pytest.raises(DomainError, match=message):
        domain.reschedule("scheduled", start, end, NOW)


def test_cancelled_and_concluded_meetings_cannot_change():
    """A cancelled meeting is gone (410); a concluded one conflicts (409)."""
    with pytest.raises(Gone, match="cancelled"):
        domain.ensure_scheduled("cancelled")
    with pytest.raises(Conflict, match="concluded"):
        domain.reschedule("concluded", START, START + timedelta(hours=1), NOW)


@pytest.mark.parametrize(("text", "expected"), [
    ("P3D", timedelta(days=3)), ("P1D", timedelta(days=1)), ("PT2M", timedelta(minutes=2)),
    ("P1DT12H", timedelta(days=1, hours=12)), ("P1W", timedelta(weeks=1)), ("PT30S", timedelta(seconds=30)),
])
def test_leads_parse_iso_8601_durations(text, expected):
    """Leads are ISO 8601 durations in weeks, days, hours, minutes, seconds."""
    assert domain.parse_lead(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "3D", "P1M", "P1Y", "PT0S", "P1DT", "-P1D", "P1.5D"])
def test_bad_leads_are_refused(text):
    """Calendar-dependent (months, years), empty, zero or malformed leads are errors."""
    with pytest.raises(ValueError, match="reminder lead"):
        domain.parse_lead(text)


def test_leads_already_past_are_skipped():
    """Two days before the start, the three-day reminder is skipped and the one-day one kept."""
    now = START - timedelta(days=2)
    assert domain.reminder_times(START, ["P3D", "P1D"], now) == [("P1D", START - timedelta(days=1))]


def test_reminder_keys_are_prefixed_by_meeting_then_invitation():
    """Keys nest so a meeting's or one invitation's timers can be cancelled by prefix."""
    meeting, invitation = uuid.uuid4(), uuid.uuid4()
    assert domain.reminder_key(meeting, invitation, "P1D") == f"{meeting}:{invitation}:P1D"


@pytest.mark.parametrize(("meeting_status", "invitation_status", "response", "now", "expected"), [
    ("scheduled", "active", None, NOW, True),
    ("scheduled", "active", "accepted", NOW, True),
    ("scheduled", "active", "declined", NOW, False),
    ("scheduled", "active", "delegated", NOW, False),
    ("scheduled", "withdrawn", None, NOW, False),
    ("cancelled", "active", None, NOW, False),
    ("scheduled", "active", None, START, False),
])
def test_who_is_reminded(meeting_status, invitation_status, response, now, expected):
    """Only active invitees who have not declined or delegated, of a scheduled meeting not yet started."""
    assert domain.should_remind(meeting_status=meeting_status, invitation_status=invitation_status,
                                response=response, starts_at=START, now=now) is expected


INVITEE = domain.Person("Drs. H. Sekda Lombok Barat", "sekda@lombokbaratkab.go.id", "+62 812-0000-0001")
DEPUTY = domain.Person("Asisten Pemerintahan", "asisten1@lombokbaratkab.go.id", None)


def decide(new: Answer, current: Answer | None = None, **overrides) -> bool:
    args = {"meeting_status": "scheduled", "starts_at": START, "now": NOW, "invitation_status": "active",
            "role": "sekda", "current": current, "new": new, "invitee": INVITEE, "delegate": DEPUTY} | overrides
    return domain.decide_answer(**args)


def test_first_and_changed_answers_change_state_repeats_do_not():
    """A first answer and a changed one count; repeating the current answer is a no-op."""
    assert decide(Answer("accepted")) is True
    assert decide(Answer("declined", "Dinas luar"), current=Answer("accepted")) is True
    assert decide(Answer("accepted"), current=Answer("accepted")) is False
    delegate = ("A", "B", "a@x.go.id", "")
    assert decide(Answer("delegated", delegate_key=delegate), current=Answer("delegated", delegate_key=delegate)) is False
    assert decide(Answer("delegated", delegate_key=("C", "D", "", "+62")),
                  current=Answer("delegated", delegate_key=delegate)) is True


@pytest.mark.parametrize(("new", "overrides", "error", "message"), [
    (Answer("declined"), {}, DomainError, "reason"),
    (Answer("delegated"), {}, DomainError, "name the delegate"),
    (Answer("accepted", delegate_key=("A",)), {}, DomainError, "only given"),
    (Answer("delegated", delegate_key=("A",)), {"role": "delegate"}, DomainError, "cannot delegate"),
    (Answer("maybe"), {}, DomainError, "one of"),
    (Answer("accepted"), {"now": START}, Conflict, "started"),
    (Answer("accepted"), {"meeting_status": "cancelled"}, Gone, "cancelled"),
    (Answer("accepted"), {"invitation_status": "withdrawn"}, Gone, "withdrawn"),
])
def test_answers_breaking_a_rule_are_refused(new, overrides, error, message):
    """Declines need a reason, delegations a delegate; late, cancelled or withdrawn answers are refused."""
    with pytest.raises(error, match=message):
        decide(new, **overrides)


def test_conclude_and_attendance_wait_for_the_meeting():
    """Concluding needs the start to have passed; attendance opens two hours before it."""
    with pytest.raises(Conflict, match="not started"):
        domain.ensure_can_conclude("scheduled", START, START - timedelta(seconds=1))
    domain.ensure_can_conclude("scheduled", START, START)
    with pytest.raises(Conflict, match="2 hours"):
        domain.ensure_can_record_attendance("scheduled", START, START - timedelta(hours=3))
    domain.ensure_can_record_attendance("scheduled", START, START - timedelta(hours=1))


def test_issuing_stops_at_the_start():
    """No invitations go out once the meeting has started."""
    with pytest.raises(Conflict, match="started"):
        domain.ensure_can_issue("scheduled", START, START)


def test_attendance_lists_every_region_and_only_those_who_came():
    """All regions appear; absent ones are empty; seats come in protocol order with delegates in their seat."""
    def seat(region, role, attended, delegate_for=None, name="x"):
        return domain.Seat(uuid.uuid4(), region, role, name, "", attended, delegate_for)

    seats = [seat("52.01", "kepala_disnaker", True), seat("52.01", "delegate", True, "kepala_bpkad"),
             seat("52.01", "sekda", True), seat("52.02", "sekda", False), seat("99.99", "sekda", True)]
    result = domain.attendance_by_region(["52.01", "52.02", "52.03"], seats)
    assert list(result) == ["52.01", "52.02", "52.03"]
    assert [(s.role, s.delegate_for) for s in result["52.01"]] == [
        ("sekda", None), ("delegate", "kepala_bpkad"), ("kepala_disnaker", None)]
    assert result["52.02"] == [] and result["52.03"] == []


POLICY = domain.DelegationPolicy(max_delegations=3, min_interval=timedelta(minutes=10), email_domains=("go.id",))


NO_HISTORY = domain.DelegationHistory()  # an invitation that has named no delegate yet


def delegate_to(person: domain.Person, history: domain.DelegationHistory = NO_HISTORY, **overrides) -> bool:
    return decide(Answer("delegated", delegate_key=(person.name, "T", person.email or "", person.phone or "")),
                  delegate=person, history=history, policy=POLICY, **overrides)


@pytest.mark.parametrize(("person", "message"), [
    (domain.Person("drs. h.  SEKDA lombok barat", "other@lombokbaratkab.go.id"), "yourself"),
    (domain.Person("Someone Else", "SEKDA@lombokbaratkab.go.id"), "yourself"),
    (domain.Person("Someone Else", None, "0812 0000 0001"), "yourself"),
    (domain.Person("Someone Else", "someone@gmail.com"), "official address"),
    (domain.Person("Someone Else", "someone@go.id.evil.example"), "official address"),
    (domain.Person("Someone Else", "someone@notgo.id"), "official address"),
])
def test_delegation_to_oneself_or_outside_official_domains_is_refused(person, message):
    """Self-delegation (same name, e-mail or phone) and addresses outside .go.id or the invitee's domain."""
    with pytest.raises(DomainError, match=message):
        delegate_to(person)


def test_delegation_is_bounded_in_number_and_rate():
    """At most 3 delegates per invitation; a new one at least 10 minutes after the last."""
    assert delegate_to(DEPUTY, domain.DelegationHistory(2, NOW - timedelta(minutes=10))) is True
    with pytest.raises(Conflict, match="most allowed"):
        delegate_to(DEPUTY, domain.DelegationHistory(3, NOW - timedelta(days=1)))
    with pytest.raises(domain.TooSoon, match="minute"):
        delegate_to(DEPUTY, domain.DelegationHistory(1, NOW - timedelta(minutes=9)))
    with pytest.raises(Conflict, match="started"):
        delegate_to(DEPUTY, now=START)
    with pytest.raises(Conflict, match="started"):
        delegate_to(DEPUTY, now=START + timedelta(days=1))


@settings(max_examples=300, deadline=None)
@given(local=st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True),
       domain_=st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True))
def test_any_accepted_delegate_address_is_under_an_official_domain(local, domain_):
    """Whatever address a link holder types, an accepted one is under .go.id or the invitee's own domain."""
    person = domain.Person("Someone Else", f"{local}@{domain_}")
    try:
        delegate_to(person)
    except DomainError:
        return
    assert domain_ == "go.id" or domain_.endswith(".go.id")
