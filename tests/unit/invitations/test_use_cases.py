"""Use cases run against a fake unit of work: what they write, what they emit, and what a refusal leaves.

The stand-in store keeps rows in dicts and implements only what these use cases call; the SQL
itself is exercised on PostgreSQL by tests/integration/invitations.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.invitations import commands, domain, tokens
from services.invitations.config import Config
from shared.contracts.common import Contact
from shared.contracts.invitations import InvitationIssued, InvitationResponded, ReminderDue
from shared.platform.timers import Timer, TimerContext
from shared.platform.unit_of_work import SYSTEM, Actor
from tests.unit.fakes import NOW, RecordingOutbox, fake_unit_of_work

START = NOW + timedelta(days=5)
CONFIG = Config("https://rakor.example.go.id", b"s" * 32, reminder_leads=("P3D", "P1D"),
                rsvp_closes_before=timedelta(hours=12),
                delegation=domain.DelegationPolicy(max_delegations=3, min_interval=timedelta(minutes=10)))
ORGANIZER = Actor("key-organizer")


class MemoryStore:
    """Meetings, invitees, invitations and armed reminders in dicts; `writes` names every write made."""

    def __init__(self) -> None:
        self.meetings: dict[uuid.UUID, dict[str, Any]] = {}
        self.invitees: list[dict[str, Any]] = []
        self.invitations: dict[uuid.UUID, dict[str, Any]] = {}
        self.reminders: dict[str, datetime] = {}
        self.answers: list[dict[str, Any]] = []
        self.writes: list[str] = []

    # -- setup helpers (not part of the store's interface) --

    def meeting(self, *, status: str = "scheduled", starts_at: datetime = START) -> uuid.UUID:
        meeting_id = uuid.uuid4()
        self.meetings[meeting_id] = {
            "meeting_id": meeting_id, "title": "Rakor Kepesertaan", "agenda": "Komitmen 2026", "starts_at": starts_at,
            "ends_at": starts_at + timedelta(hours=3), "venue": "Pendopo, Mataram", "online_url": None,
            "organizer": "Wakil Gubernur NTB", "status": status, "sequence": 0}
        return meeting_id

    def seat(self, region_code: str, role: str, name: str, email: str) -> None:
        self.invitees.append({"region_code": region_code, "role": role, "name": name, "title": f"{role} {region_code}",
                              "email": email, "phone": None, "webhook_url": None})

    # -- what the use cases call --

    async def lock_meeting(self, meeting_id: uuid.UUID) -> dict[str, Any] | None:
        return self.meetings.get(meeting_id)

    async def list_invitees(self) -> list[dict[str, Any]]:
        return list(self.invitees)

    async def insert_invitation(self, *, invitation_id: uuid.UUID, meeting_id: uuid.UUID, region_code: str, role: str,
                                person: dict[str, Any], rsvp_expires_at: datetime, now: datetime,
                                delegated_from: uuid.UUID | None = None) -> dict[str, Any] | None:
        if delegated_from is None and any(
                i["meeting_id"] == meeting_id and (i["region_code"], i["role"]) == (region_code, role)
                and i["delegated_from"] is None for i in self.invitations.values()):
            return None  # the seat already has its invitation (the unique index)
        self.writes.append("insert_invitation")
        row = {"invitation_id": invitation_id, "meeting_id": meeting_id, "region_code": region_code, "role": role,
               "name": person["name"], "title": person.get("title") or "", "email": person.get("email"),
               "phone": person.get("phone"), "webhook_url": person.get("webhook_url"), "delegated_from": delegated_from,
               "rsvp_expires_at": rsvp_expires_at, "issued_at": now, "status": "active", "response": None,
               "reason": "", "delegate_invitation_id": None, "responded_at": None, "attended": False}
        self.invitations[invitation_id] = row
        return dict(row)

    async def invitations_of(self, meeting_id: uuid.UUID) -> list[dict[str, Any]]:
        return [dict(i) for i in self.invitations.values() if i["meeting_id"] == meeting_id]

    async def get_invitation(self, invitation_id: uuid.UUID) -> dict[str, Any] | None:
        found = self.invitations.get(invitation_id)
        return dict(found) if found is not None else None

    async def delegations_of(self, invitation_id: uuid.UUID) -> tuple[int, datetime | None]:
        named = [i["issued_at"] for i in self.invitations.values() if i["delegated_from"] == invitation_id]
        return len(named), max(named, default=None)

    async def withdraw_invitation(self, invitation_id: uuid.UUID) -> None:
        self.writes.append("withdraw_invitation")
        self.invitations[invitation_id]["status"] = "withdrawn"

    async def record_answer(self, invitation_id: uuid.UUID, *, response: str, reason: str,
                            delegate: dict[str, Any] | None, delegate_invitation_id: uuid.UUID | None,
                            previous_response: str | None, now: datetime) -> None:
        self.writes.append("record_answer")
        self.invitations[invitation_id].update(response=response, reason=reason, responded_at=now,
                                               delegate_invitation_id=delegate_invitation_id)
        self.answers.append({"invitation_id": invitation_id, "response": response, "previous": previous_response})

    async def arm_reminder(self, key: str, due_at: datetime, payload: dict[str, Any], *, rearm: bool) -> None:
        self.writes.append("arm_reminder")
        self.reminders[key] = due_at

    async def cancel_reminders(self, key_prefix: str) -> None:
        self.writes.append("cancel_reminders")
        self.reminders = {k: v for k, v in self.reminders.items() if not k.startswith(key_prefix)}


def _ntb_directory(store: MemoryStore) -> None:
    store.seat("52.01", "sekda", "H. Lalu Firman", "sekda@lombokbaratkab.go.id")
    store.seat("52.01", "kepala_bpkad", "Hj. Baiq Rina", "bpkad@lombokbaratkab.go.id")


async def _issued(store: MemoryStore, meeting_id: uuid.UUID) -> list[dict[str, Any]]:
    uow, _ = fake_unit_of_work(store, actor=ORGANIZER)
    await commands.issue_invitations(uow, CONFIG, meeting_id)
    store.writes.clear()
    return await store.invitations_of(meeting_id)


# ---- issuing -----------------------------------------------------------------------------------


async def test_issuing_invites_every_seat_once_with_a_signed_link_and_its_reminders():
    """Each directory seat gets one invitation, one InvitationIssued whose link opens it, and a reminder per lead."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    uow, outbox = fake_unit_of_work(store, actor=ORGANIZER)

    result = await commands.issue_invitations(uow, CONFIG, meeting_id)

    assert result == {"issued": 2, "already_issued": 0, "total": 2}
    issued = outbox.payloads()
    assert [type(p) for p in issued] == [InvitationIssued, InvitationIssued]
    for payload in issued:
        token = payload.rsvp_url.rsplit("/", 1)[-1]
        assert payload.rsvp_url.startswith("https://rakor.example.go.id/undangan/")
        assert tokens.verify(CONFIG.secret, token, NOW)[0] == payload.invitation_id
        # Answers close `rsvp_closes_before` ahead of the start, and the link expires with them.
        assert payload.rsvp_expires_at == START - timedelta(hours=12)
    assert {e.correlation_id for _, e in outbox.emitted} == {"corr-1"}  # correlated with what started the work
    assert sorted(store.reminders.values()) == sorted([START - timedelta(days=3), START - timedelta(days=1)] * 2)


async def test_issuing_again_duplicates_nothing():
    """A second call invites no one again: no event, no reminder, the counts say so."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    await _issued(store, meeting_id)
    uow, outbox = fake_unit_of_work(store, actor=ORGANIZER)

    result = await commands.issue_invitations(uow, CONFIG, meeting_id)

    assert result == {"issued": 0, "already_issued": 2, "total": 2}
    assert outbox.payloads() == [] and store.writes == []


@pytest.mark.parametrize(("status", "starts_at", "refusal", "http_status"), [
    ("scheduled", NOW, domain.Conflict, 409),           # the meeting has started
    ("cancelled", START, domain.Gone, 410),
    ("concluded", START, domain.Conflict, 409),
])
async def test_issuing_for_a_meeting_that_cannot_take_invitations_writes_nothing(status, starts_at, refusal,
                                                                                 http_status):
    """A started, cancelled or concluded meeting refuses invitations: no row, no reminder, no event."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting(status=status, starts_at=starts_at)
    uow, outbox = fake_unit_of_work(store, actor=ORGANIZER)

    with pytest.raises(refusal) as refused:
        await commands.issue_invitations(uow, CONFIG, meeting_id)

    assert refused.value.http_status == http_status
    assert store.writes == [] and store.invitations == {} and outbox.payloads() == []


async def test_issuing_with_an_empty_directory_or_for_no_meeting_is_refused():
    """No directory: 409 naming the import; an unknown meeting: 404. Neither writes."""
    store = MemoryStore()
    meeting_id = store.meeting()
    uow, outbox = fake_unit_of_work(store, actor=ORGANIZER)
    with pytest.raises(domain.Conflict, match="directory is empty"):
        await commands.issue_invitations(uow, CONFIG, meeting_id)
    with pytest.raises(domain.NotFound):
        await commands.issue_invitations(uow, CONFIG, uuid.uuid4())
    assert store.writes == [] and outbox.payloads() == []


# ---- answering ---------------------------------------------------------------------------------


async def test_accepting_records_the_answer_and_announces_it():
    """An acceptance is stored with no previous answer, emitted as InvitationResponded, and keeps its reminders."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = next(i for i in await _issued(store, meeting_id) if i["role"] == "sekda")
    uow, outbox = fake_unit_of_work(store, actor=Actor(f"invitation:{sekda['invitation_id']}"))

    result = await commands.answer(uow, CONFIG, sekda["invitation_id"], response="accepted", reason="",
                                   delegate=None)

    assert result == {"changed": True, "delegate_invitation_id": None}
    assert store.answers == [{"invitation_id": sekda["invitation_id"], "response": "accepted", "previous": None}]
    [responded] = outbox.payloads()
    assert isinstance(responded, InvitationResponded)
    assert (responded.invitation_id, responded.response, responded.responded_at) == (
        sekda["invitation_id"], "accepted", NOW)
    assert sum(k.startswith(f"{meeting_id}:{sekda['invitation_id']}:") for k in store.reminders) == 2


async def test_the_same_answer_twice_changes_nothing():
    """Repeating the current answer writes and emits nothing."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = (await _issued(store, meeting_id))[0]
    uow, _ = fake_unit_of_work(store)
    await commands.answer(uow, CONFIG, sekda["invitation_id"], response="declined", reason="Dinas luar",
                          delegate=None)
    store.writes.clear()
    uow, outbox = fake_unit_of_work(store)

    result = await commands.answer(uow, CONFIG, sekda["invitation_id"], response="declined", reason="Dinas luar",
                                   delegate=None)

    assert result["changed"] is False and store.writes == [] and outbox.payloads() == []


async def test_delegating_invites_the_delegate_and_moves_the_reminders_to_them():
    """A delegation stores the answer, invites the named delegate (own link, own reminders) and stops the
    official's reminders; the delegate's invitation follows the answer in the outbox."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = next(i for i in await _issued(store, meeting_id) if i["role"] == "sekda")
    delegate = Contact(name="Drs. Muhammad Ali", title="Asisten I", email="asisten1@lombokbaratkab.go.id")
    uow, outbox = fake_unit_of_work(store)

    result = await commands.answer(uow, CONFIG, sekda["invitation_id"], response="delegated", reason="",
                                   delegate=delegate)

    delegate_id = result["delegate_invitation_id"]
    assert delegate_id is not None and store.invitations[delegate_id]["delegated_from"] == sekda["invitation_id"]
    responded, issued = outbox.payloads()
    assert isinstance(responded, InvitationResponded) and responded.delegate == delegate
    assert isinstance(issued, InvitationIssued) and issued.invitation_id == delegate_id
    assert issued.invitee.email == "asisten1@lombokbaratkab.go.id"
    assert not any(k.startswith(f"{meeting_id}:{sekda['invitation_id']}:") for k in store.reminders)
    assert sum(k.startswith(f"{meeting_id}:{delegate_id}:") for k in store.reminders) == 2


@pytest.mark.parametrize(("response", "reason", "delegate", "refusal", "http_status", "message"), [
    ("declined", "", None, domain.Invalid, 422, "reason"),
    ("delegated", "", None, domain.Invalid, 422, "name the delegate"),
    ("delegated", "", Contact(name="H. Lalu Firman", title="Sekda", email="lain@lombokbaratkab.go.id"),
     domain.Invalid, 422, "yourself"),
    ("delegated", "", Contact(name="Someone Else", title="Staf", email="someone@gmail.com"),
     domain.Invalid, 422, "official address"),
])
async def test_a_refused_answer_writes_and_emits_nothing(response, reason, delegate, refusal, http_status, message):
    """A decline without a reason, a delegation naming no one, oneself or a private address: refused, nothing kept."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = next(i for i in await _issued(store, meeting_id) if i["role"] == "sekda")
    reminders = dict(store.reminders)
    uow, outbox = fake_unit_of_work(store)

    with pytest.raises(refusal, match=message) as refused:
        await commands.answer(uow, CONFIG, sekda["invitation_id"], response=response, reason=reason,
                              delegate=delegate)

    assert refused.value.http_status == http_status
    assert store.writes == [] and store.answers == [] and outbox.payloads() == []
    assert store.reminders == reminders


async def test_answers_after_the_rsvp_deadline_are_refused():
    """Past the invitation's deadline (12 hours before the start) an answer conflicts and is not kept."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = (await _issued(store, meeting_id))[0]
    uow, outbox = fake_unit_of_work(store, now=START - timedelta(hours=11))

    with pytest.raises(domain.Conflict, match="deadline"):
        await commands.answer(uow, CONFIG, sekda["invitation_id"], response="accepted", reason="", delegate=None)

    assert store.writes == [] and outbox.payloads() == []


async def test_a_second_delegation_moments_after_the_first_is_too_soon():
    """Naming another delegate within the policy's interval is refused with 429, and the first delegate stays."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    sekda = next(i for i in await _issued(store, meeting_id) if i["role"] == "sekda")
    first = Contact(name="Drs. Muhammad Ali", title="Asisten I", email="asisten1@lombokbaratkab.go.id")
    uow, _ = fake_unit_of_work(store)
    named = await commands.answer(uow, CONFIG, sekda["invitation_id"], response="delegated", reason="",
                                  delegate=first)
    store.writes.clear()
    second = Contact(name="Ir. Baiq Nur", title="Asisten II", email="asisten2@lombokbaratkab.go.id")
    uow, outbox = fake_unit_of_work(store, now=NOW + timedelta(minutes=2))

    with pytest.raises(domain.TooSoon) as refused:
        await commands.answer(uow, CONFIG, sekda["invitation_id"], response="delegated", reason="", delegate=second)

    assert refused.value.http_status == 429
    assert store.writes == [] and outbox.payloads() == []
    assert store.invitations[named["delegate_invitation_id"]]["status"] == "active"


# ---- reminders ---------------------------------------------------------------------------------


def _timer_context(store: MemoryStore, invitation_id: uuid.UUID, now: datetime) -> tuple[TimerContext, RecordingOutbox]:
    outbox = RecordingOutbox()
    timer = Timer(1, "invitations.reminder", f"x:{invitation_id}:P1D", now, {"invitation_id": str(invitation_id),
                                                                             "lead": "P1D"})
    return TimerContext(conn=None, outbox=outbox, now=now, actor=SYSTEM, store=store,  # type: ignore[arg-type]
                        causation_id="timer:1", timer=timer), outbox


async def test_a_due_reminder_reaches_an_invitee_still_expected_and_skips_one_who_declined():
    """ReminderDue (with a fresh link) for a seat not yet answered; nothing for a seat that declined."""
    store = MemoryStore()
    _ntb_directory(store)
    meeting_id = store.meeting()
    expected, declined = await _issued(store, meeting_id)
    uow, _ = fake_unit_of_work(store)
    await commands.answer(uow, CONFIG, declined["invitation_id"], response="declined", reason="Sakit", delegate=None)
    due = START - timedelta(days=1)

    ctx, outbox = _timer_context(store, expected["invitation_id"], due)
    await commands.fire_reminder(ctx, CONFIG)
    [reminder] = outbox.payloads()
    assert isinstance(reminder, ReminderDue) and reminder.invitation_id == expected["invitation_id"]
    assert tokens.verify(CONFIG.secret, reminder.rsvp_url.rsplit("/", 1)[-1], due)[0] == expected["invitation_id"]
    assert outbox.emitted[0][1].causation_id == "timer:1"

    ctx, outbox = _timer_context(store, declined["invitation_id"], due)
    await commands.fire_reminder(ctx, CONFIG)
    assert outbox.payloads() == []
