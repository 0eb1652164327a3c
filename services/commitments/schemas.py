"""Request and response models of the commitments API (validated at the edge, before any use case)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.contracts.commitments import BudgetStage, CommitmentBody, CommitmentStatus, FundingSource, Programme, Segment
from shared.contracts.regions import RegionCode, regions
from shared.contracts.text import line_field, paragraph_field
from shared.platform.errors import Forbidden
from shared.platform.formatting import format_rupiah
from shared.platform.wita import as_wita

from . import calculator

MAX_RP = 10**13  # Rp10 trillion: far above any regency's whole budget


class _Strict(BaseModel):
    # Money and counts are JSON integers only (StrictInt: no "1000", no true, no 1000.0); text
    # fields are refused, never trimmed, when they carry edge whitespace (shared.contracts.text).
    model_config = ConfigDict(extra="forbid")


class LineIn(_Strict):
    segment: Segment
    programmes: list[Programme] = Field(min_length=1, max_length=4)
    workers: StrictInt = Field(gt=0, le=calculator.MAX_WORKERS_PER_LINE)
    months: StrictInt = Field(gt=0, le=12)
    unit_contribution_rp: StrictInt | None = Field(default=None, ge=0, le=100_000_000)
    wage_rp: StrictInt | None = Field(default=None, gt=0, le=calculator.MAX_WAGE_RP)
    jkk_risk_class: StrictInt | None = Field(default=None, ge=1, le=5)
    total_rp: StrictInt = Field(ge=0, le=MAX_RP)
    funding_source: FundingSource
    implementing_office: Annotated[str, line_field(200)] = "Disnaker"


class CommitmentIn(_Strict):
    """A regency's commitment. region_code may be omitted (the path names it)."""

    region_code: RegionCode | None = None
    fiscal_year: StrictInt = Field(ge=2000, le=2100)
    budget_stage: BudgetStage
    signatory_name: Annotated[str, line_field(200)] = Field(examples=["Sekretaris Daerah Kabupaten Sumbawa"])
    legal_basis: Annotated[str, line_field(300, min_length=0)] = Field(default="", examples=["Perbup Sumbawa No. 12 Tahun 2025"])
    beneficiary_verification: Annotated[str, line_field(300, min_length=0)] = "NIK via Dukcapil"
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    total_workers: StrictInt = Field(ge=0, le=50_000_000)
    total_rp: StrictInt = Field(ge=0, le=MAX_RP)

    def body_for(self, region_code: str) -> CommitmentBody:
        if self.region_code is not None and self.region_code != region_code:
            raise Forbidden(f"body names region {self.region_code} but the request is for {region_code}")
        try:
            return CommitmentBody.model_validate(self.model_dump() | {"region_code": region_code})
        except ValidationError as exc:  # e.g. text PostgreSQL cannot store (NUL): the contract refuses it
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                 for e in exc.errors(include_url=False, include_input=False)]) from exc


class OpenRequestsIn(_Strict):
    regions: list[RegionCode] | None = Field(default=None, max_length=10, description="Default: all ten")
    deadline: datetime | None = Field(default=None, description="Default from settings; no offset = WITA")
    meeting_id: uuid.UUID | None = None


class NoteIn(_Strict):
    note: Annotated[str, paragraph_field(2000)] = ""


class ReturnIn(_Strict):
    reasons: list[Annotated[str, paragraph_field(1000, min_length=1)]] = Field(min_length=1, max_length=20,
                                                                         description="What to fix, in Bahasa Indonesia")


class ExtendIn(_Strict):
    deadline: datetime = Field(description="The new deadline; no offset = WITA")
    reason: Annotated[str, paragraph_field(2000)] = ""


class CommitmentView(BaseModel):
    commitment_id: uuid.UUID
    region_code: str
    region_name: str
    fiscal_year: int
    status: CommitmentStatus
    version: int
    deadline: datetime = Field(description="In WITA")
    overdue_since: datetime | None
    revision: int
    total_workers: int
    total_rp: int
    total_rp_display: str
    max_months: int
    worker_months: int
    rates_version: str | None
    body: dict[str, Any] | None
    meeting_id: uuid.UUID | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> CommitmentView:
        data = {k: v for k, v in dict(row).items() if k in cls.model_fields}
        data |= {"region_name": regions()[row["region_code"]].name, "deadline": as_wita(row["deadline"]),
                 "overdue_since": as_wita(row["overdue_at"]) if row["overdue_at"] else None,
                 "total_rp_display": format_rupiah(row["total_rp"])}
        return cls(**data)


class AuditView(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    event_id: str | None
