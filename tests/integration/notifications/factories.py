"""Event payloads as the producing services publish them (their contracts are the interface)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts.commitments import (
    CommitmentOverdue,
    CommitmentReturned,
    CommitmentSubmitted,
    CommitmentVerified,
    DeadlineApproaching,
)
from shared.contracts.common import Contact, MeetingInfo
from shared.contracts.invitations import InvitationIssued, InvitationRescheduled, MeetingCancelled, MeetingRescheduled

START = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # Kamis, 3 Desember 2026 pukul 09.00 WITA


def meeting_info(meeting_id: str | None = None, start: datetime = START) -> MeetingInfo:
    return MeetingInfo(meeting_id=meeting_id or str(uuid.uuid4()), title="Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan",
                       agenda="Komitmen APBD 2026", starts_at=start, ends_at=start + timedelta(hours=3),
                       venue="Pendopo Wakil Gubernur NTB, Mataram", organizer="Wakil Gubernur NTB")


def invitation(email: str | None = "sekda@dompukab.go.id", webhook_url: str | None = None, *,
               meeting: MeetingInfo | None = None, delegated_from: uuid.UUID | None = None,
               name: str = "Drs. Fajar Nugroho") -> InvitationIssued:
    meeting = meeting or meeting_info()
    return InvitationIssued(
        invitation_id=uuid.uuid4(), meeting_id=uuid.UUID(meeting.meeting_id), meeting=meeting, region_code="52.05",
        role="delegate" if delegated_from else "sekda", delegated_from=delegated_from,
        invitee=Contact(name=name, title="Sekretaris Daerah Kabupaten Dompu", email=email, webhook_url=webhook_url),
        rsvp_url="https://rakor.ntbprov.go.id/rsvp/abc", rsvp_expires_at=START - timedelta(days=2),
    )


def rescheduled(meeting: MeetingInfo, new_start: datetime) -> MeetingRescheduled:
    moved = meeting_info(meeting.meeting_id, new_start)
    return MeetingRescheduled(meeting=moved, meeting_id=uuid.UUID(meeting.meeting_id),
                              previous_starts_at=meeting.starts_at, reason="Menyesuaikan agenda Gubernur")


def told(moved: MeetingRescheduled, invited: InvitationIssued, response: str | None = None) -> InvitationRescheduled:
    """The reschedule as the invitations service tells it to one invitee: with their own link."""
    return InvitationRescheduled(
        invitation_id=invited.invitation_id, meeting_id=moved.meeting_id, meeting=moved.meeting,
        previous_starts_at=moved.previous_starts_at, reason=moved.reason, region_code=invited.region_code,
        role=invited.role, invitee=invited.invitee, rsvp_url=f"https://rakor.ntbprov.go.id/undangan/{invited.invitation_id.hex}",
        rsvp_expires_at=moved.meeting.starts_at - timedelta(hours=12), response=response,
        calendar_uid=moved.calendar_uid, calendar_sequence=moved.calendar_sequence)


def cancelled(meeting: MeetingInfo) -> MeetingCancelled:
    return MeetingCancelled(meeting=meeting, meeting_id=uuid.UUID(meeting.meeting_id), reason="Force majeure")


LINE = {"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": 15000, "months": 12,
        "unit_contribution_rp": 16800, "total_rp": 3024000000, "funding_source": "apbd_kabupaten_kota"}


def submitted(region: str, workers: int, total_rp: int) -> CommitmentSubmitted:
    line = LINE | {"workers": workers, "total_rp": total_rp}
    return CommitmentSubmitted(region_code=region, fiscal_year=2026, budget_stage="murni", signatory_name="Sekda",
                               lines=[line], total_workers=workers, total_rp=total_rp, commitment_id=uuid.uuid4(),
                               revision=1, submitted_by="key1", channel="http")


def transition(region: str, workers: int = 15000, total_rp: int = 3024000000) -> dict:
    return dict(commitment_id=uuid.uuid4(), region_code=region, fiscal_year=2026, actor="rev", at=START,
                total_workers=workers, total_rp=total_rp)


def verified(region: str, workers: int, total_rp: int) -> CommitmentVerified:
    return CommitmentVerified(**transition(region, workers, total_rp))


def returned(region: str) -> CommitmentReturned:
    return CommitmentReturned(**transition(region), reasons=["Lampirkan Perbup"])


def overdue(region: str) -> CommitmentOverdue:
    return CommitmentOverdue(commitment_id=uuid.uuid4(), region_code=region, fiscal_year=2026,
                             deadline=datetime(2026, 12, 1, 8, 0, tzinfo=UTC), status="requested")


def deadline(region: str) -> DeadlineApproaching:
    return DeadlineApproaching(commitment_id=uuid.uuid4(), region_code=region, fiscal_year=2026,
                               deadline=datetime(2026, 12, 1, 8, 0, tzinfo=UTC), status="requested")
