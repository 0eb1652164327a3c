"""Commitments: facts out (`ntb.commitments.events`) and inbound messages from other systems.

Key: the region code, so one regency's history is consumed in order.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Protocol

from pydantic import AwareDatetime, Field, StrictInt

from shared.contracts.bounds import Count, FiscalYear, Months, PositiveCount, Revision, Rupiah, SenderId
from shared.contracts.regions import RegionCode
from shared.contracts.registry import EventPayload, registry
from shared.contracts.topics import COMMITMENTS_EVENTS, COMMITMENTS_INBOUND, REALIZATION_INBOUND


class _Regional(Protocol):
    @property
    def region_code(self) -> str: ...


def _region_key(payload: _Regional) -> str:
    return payload.region_code


class BudgetStage(enum.StrEnum):
    MURNI = "murni"
    PERUBAHAN = "perubahan"


class Segment(enum.StrEnum):
    PEKERJA_RENTAN_BPU = "pekerja_rentan_bpu"
    NON_ASN_PPU = "non_asn_ppu"
    PERANGKAT_DESA = "perangkat_desa"
    PETANI_TEMBAKAU = "petani_tembakau"
    PENYELENGGARA_PEMILU = "penyelenggara_pemilu"
    PEKERJA_KEAGAMAAN = "pekerja_keagamaan"  # marbot, guru ngaji and the like
    LAINNYA = "lainnya"


class Programme(enum.StrEnum):
    JKK = "jkk"
    JKM = "jkm"
    JHT = "jht"
    JP = "jp"


class FundingSource(enum.StrEnum):
    APBD_KABUPATEN_KOTA = "apbd_kabupaten_kota"
    APBD_PROVINSI = "apbd_provinsi"
    DBHCHT = "dbhcht"
    APBDES_ADD = "apbdes_add"
    CSR = "csr"
    LAINNYA = "lainnya"


class CommitmentStatus(enum.StrEnum):
    REQUESTED = "requested"
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    VERIFIED = "verified"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"


class CommitmentLine(EventPayload):
    segment: Segment = Field(description="Who is covered")
    programmes: list[Programme] = Field(min_length=1, description="JKK+JKM at least; optionally JHT, JP (PPU)")
    workers: PositiveCount = Field(description="Number of workers covered")
    months: Months = Field(description="Months of contributions paid in the fiscal year")
    unit_contribution_rp: Rupiah | None = Field(
        default=None, description="BPU: Rupiah per worker per month (Rp16.800 for JKK+JKM at the lowest base)"
    )
    wage_rp: Rupiah | None = Field(default=None, description="PPU: monthly wage in Rupiah")
    jkk_risk_class: StrictInt | None = Field(default=None, ge=1, le=5, description="PPU: JKK risk class 1-5")
    total_rp: Rupiah = Field(description="Stated total in whole Rupiah")
    funding_source: FundingSource = Field(description="Where the money comes from")
    implementing_office: str = Field(default="Disnaker", max_length=200, description="Office that carries it out")


class CommitmentBody(EventPayload):
    """What a regency commits; the same shape over HTTP and as an inbound event."""

    region_code: RegionCode = Field(description="Committing regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year (2026)")
    budget_stage: BudgetStage = Field(description="APBD murni or APBD-Perubahan")
    signatory_name: str = Field(min_length=1, max_length=200, description="Sekda who signs")
    legal_basis: str = Field(default="", max_length=300, description="Perbup/Perwali number")
    beneficiary_verification: str = Field(default="NIK via Dukcapil", max_length=300,
                                          description="How beneficiaries are verified")
    lines: list[CommitmentLine] = Field(min_length=1, max_length=50, description="One line per segment")
    total_workers: Count = Field(description="Stated sum of workers over the lines")
    total_rp: Rupiah = Field(description="Stated sum of Rupiah over the lines")


@registry.event("ntb.commitments.commitment.submit.v1", topic=COMMITMENTS_INBOUND, key=_region_key)
class SubmitCommitment(CommitmentBody):
    """Command from a regional system (e.g. via SPLP/SIPD): submit this commitment."""

    submission_id: SenderId = Field(description="Sender's id (1-100 printable ASCII, no spaces); resubmitting it "
                                                "is a no-op")


@registry.event("ntb.commitments.commitment.requested.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentRequested(EventPayload):
    """The province asked a regency for its commitment."""

    commitment_id: uuid.UUID = Field(description="The commitment record")
    region_code: RegionCode = Field(description="The regency/city asked; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    deadline: AwareDatetime = Field(description="Submission deadline (shown in WITA)")
    meeting_id: uuid.UUID | None = Field(default=None, description="The Rakor that led to it, if any")


@registry.event("ntb.commitments.commitment.submitted.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentSubmitted(CommitmentBody):
    """A regency submitted (or resubmitted) its commitment; totals agree with the calculator."""

    commitment_id: uuid.UUID = Field(description="The commitment record")
    revision: Revision = Field(description="1 for the first submission, +1 per resubmission")
    submitted_by: str = Field(description="Key id or external system that submitted")
    channel: str = Field(description="http or event")


class _Transition(EventPayload):
    commitment_id: uuid.UUID = Field(description="The commitment record")
    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    actor: str = Field(description="Who acted (key id and role)")
    at: AwareDatetime = Field(description="When")
    total_workers: Count = Field(description="Committed workers")
    total_rp: Rupiah = Field(description="Committed Rupiah")


@registry.event("ntb.commitments.commitment.returned.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentReturned(_Transition):
    """A reviewer returned the commitment for revision."""

    reasons: list[str] = Field(min_length=1, description="What to fix, in Bahasa Indonesia")


@registry.event("ntb.commitments.commitment.verified.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentVerified(_Transition):
    """Disnakertrans NTB verified the commitment."""

    note: str = Field(default="", description="Reviewer's note")


@registry.event("ntb.commitments.commitment.acknowledged.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentAcknowledged(_Transition):
    """BPJS Ketenagakerjaan NTB acknowledged the verified commitment."""

    note: str = Field(default="", description="Reviewer's note")


@registry.event("ntb.commitments.commitment.withdrawn.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentWithdrawn(_Transition):
    """The regency withdrew its commitment."""

    reason: str = Field(default="", description="Why")


@registry.event("ntb.commitments.deadline.approaching.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class DeadlineApproaching(EventPayload):
    """A reminder before the deadline of a commitment not yet submitted."""

    commitment_id: uuid.UUID = Field(description="The commitment record")
    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    deadline: AwareDatetime = Field(description="The deadline (shown in WITA)")
    status: CommitmentStatus = Field(description="Where the commitment stands")


@registry.event("ntb.commitments.deadline.extended.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class DeadlineExtended(EventPayload):
    """The deadline moved; its reminder and overdue timers moved with it."""

    commitment_id: uuid.UUID = Field(description="The commitment record")
    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    previous_deadline: AwareDatetime = Field(description="The old deadline")
    deadline: AwareDatetime = Field(description="The new deadline (shown in WITA)")
    actor: str = Field(description="Who extended it")


@registry.event("ntb.commitments.commitment.overdue.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentOverdue(EventPayload):
    """The deadline passed without a submission: escalated to the province."""

    commitment_id: uuid.UUID = Field(description="The commitment record")
    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    deadline: AwareDatetime = Field(description="The deadline missed (shown in WITA)")
    status: CommitmentStatus = Field(description="Where the commitment stands")


@registry.event("ntb.bpjs.realization.reported.v1", topic=REALIZATION_INBOUND, key=_region_key)
class RealizationReported(EventPayload):
    """BPJS Ketenagakerjaan's systems report enrollment and payment for a region and segment."""

    report_id: SenderId = Field(description="Reporter's id for this figure (1-100 printable ASCII, no spaces); "
                                            "a report_id applies once")
    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    segment: Segment = Field(description="Segment the figures are for")
    period: date = Field(description="Month the figures are for (first day)")
    workers_enrolled: Count = Field(description="Workers enrolled and active, cumulative to the period")
    contributions_paid_rp: Rupiah = Field(description="Contributions paid in the period, Rupiah")
    reported_at: AwareDatetime | None = Field(
        default=None, description="When the sender produced this figure; of the reports for one region, segment "
                                  "and month the latest wins (absent: the CloudEvent time)")


@registry.event("ntb.commitments.realization.recorded.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class RealizationRecorded(EventPayload):
    """Realization tracked against a region's commitment."""

    region_code: RegionCode = Field(description="The regency/city; the Kafka key")
    fiscal_year: FiscalYear = Field(description="Budget year")
    committed_workers: Count = Field(description="Workers committed")
    realized_workers: Count = Field(description="Workers enrolled so far")
    contributions_paid_rp: Rupiah = Field(description="Contributions paid so far, Rupiah")


@registry.event("ntb.commitments.commitment.drafted.v1", topic=COMMITMENTS_EVENTS, key=_region_key)
class CommitmentDrafted(_Transition):
    """A regency saved a draft of its commitment (figures checked, not yet submitted)."""
