"""HTTP entrypoints: validate, authorize, run the use case in one transaction, translate errors."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.platform.auth import Principal, require

from shared.contracts.roles import Role
from shared.contracts.commitments import (BudgetStage, CommitmentBody, CommitmentStatus, FundingSource, Programme,
                                          Segment)
from shared.contracts.text import line, paragraph
from shared.platform.http import api_router, body_limit, error
from shared.platform.logging import get_logger
from shared.contracts.regions import RegionCode, regions
from shared.platform.wita import as_wita

from . import calculator, operations as ops, store
from .summary import summary as build_summary
from .workflow import Action, ActionForbidden, IllegalTransition

log = get_logger(__name__)
ANY_ROLE = tuple(Role)
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
    implementing_office: line(200) = "Disnaker"


class CommitmentIn(_Strict):
    """A regency's commitment. region_code may be omitted (the path names it)."""

    region_code: RegionCode | None = None
    fiscal_year: StrictInt = Field(ge=2000, le=2100)
    budget_stage: BudgetStage
    signatory_name: line(200) = Field(examples=["Sekretaris Daerah Kabupaten Sumbawa"])
    legal_basis: line(300, min_length=0) = Field(default="", examples=["Perbup Sumbawa No. 12 Tahun 2025"])
    beneficiary_verification: line(300, min_length=0) = "NIK via Dukcapil"
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    total_workers: StrictInt = Field(ge=0, le=50_000_000)
    total_rp: StrictInt = Field(ge=0, le=MAX_RP)

    def body_for(self, region_code: str) -> CommitmentBody:
        if self.region_code is not None and self.region_code != region_code:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"body names region {self.region_code} but the request is for {region_code}")
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
    note: paragraph(2000) = ""


class ReturnIn(_Strict):
    reasons: list[paragraph(1000, min_length=1)] = Field(min_length=1, max_length=20,
                                                         description="What to fix, in Bahasa Indonesia")


class ExtendIn(_Strict):
    deadline: datetime = Field(description="The new deadline; no offset = WITA")
    reason: paragraph(2000) = ""


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
                 "total_rp_display": calculator.rupiah(row["total_rp"])}
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


# The ETag this service sends: a quoted version number. ASCII digits only: str.isdigit() also
# admits "²" or Arabic-Indic digits, which int() then refuses (that was a 500).
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,100}$"
IF_MATCH = Header(default=None, pattern=r'^(W/)?"?[0-9]{1,9}"?$',
                  description="The ETag (version) last read: the change applies only to that version (else 412)")


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "If-Match must be the version (ETag) of the commitment")
    return int(match.group(1))


def _error(exc: Exception) -> HTTPException:
    if isinstance(exc, ops.NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, ActionForbidden | PermissionError):
        return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))
    if isinstance(exc, IllegalTransition):
        return HTTPException(status.HTTP_409_CONFLICT, {"message": str(exc), "current_status": exc.current.value})
    if isinstance(exc, ops.VersionMismatch):
        return HTTPException(status.HTTP_412_PRECONDITION_FAILED,
                             {"message": str(exc), "current_status": exc.current.value})
    if isinstance(exc, ops.InvalidCommitment):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
    raise exc


WRITE_ERRORS = error(400, 404, 409, 412, 422, e409="Not allowed from the current state (`detail` names it)",
                     e412="The If-Match version is stale (`detail` names the current state)")
DOMAIN_ERRORS = (ops.NotFound, PermissionError, IllegalTransition, ops.VersionMismatch, ops.InvalidCommitment)


def _actor(principal: Principal) -> ops.Actor:
    return ops.Actor(principal.key_id, principal.role)


def _own_region(principal: Principal, region_code: str) -> None:
    if not principal.can_act_for(region_code):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"a key for region {principal.region_code} may not act for region {region_code}")


async def _region_operator_of_path(region_code: RegionCode,
                                   principal: Principal = Depends(require(Role.REGION_OPERATOR))) -> Principal:
    """The region check as a dependency, so another region's key gets 403 before its body is validated."""
    _own_region(principal, region_code)
    return principal


def _view(response: Response, row: asyncpg.Record) -> CommitmentView:
    response.headers["ETag"] = f'"{row["version"]}"'
    return CommitmentView.of(row)


def router() -> APIRouter:
    api = api_router(tags=["commitments"])

    def settings(request: Request) -> Any:
        return request.app.state.runtime.settings

    def now(request: Request) -> datetime:
        return request.app.state.runtime.clock()

    @api.post("/commitments/requests", status_code=status.HTTP_201_CREATED, summary="Open commitment requests",
              responses=error(422), openapi_extra=body_limit(16 * 1024))
    async def open_requests(body: OpenRequestsIn, request: Request,
                            principal: Principal = Depends(require(Role.ORGANIZER))) -> dict[str, Any]:
        rt, s, at = request.app.state.runtime, settings(request), now(request)
        deadline = as_wita(body.deadline) if body.deadline else s.deadline_for(at)
        if deadline <= at:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the deadline must be in the future")
        opened, existing = [], []
        async with rt.pool.acquire() as conn, conn.transaction():
            for code in body.regions or list(regions()):
                commitment_id, created = await ops.open_request(
                    conn, lambda p: rt.outbox.add(conn, p), region_code=code, fiscal_year=s.fiscal_year,
                    deadline=deadline, leads=s.deadline_reminder_leads, meeting_id=body.meeting_id,
                    actor=_actor(principal), now=at)
                (opened if created else existing).append({"region_code": code, "commitment_id": str(commitment_id)})
        log.info("commitment requests opened", opened=len(opened), existing=len(existing), principal=principal.key_id)
        return {"fiscal_year": s.fiscal_year, "deadline": deadline, "opened": opened, "already_open": existing}

    @api.get("/commitments", response_model=list[CommitmentView], summary="All commitments of the fiscal year")
    async def list_commitments(request: Request,
                               principal: Principal = Depends(require(*ANY_ROLE))) -> list[CommitmentView]:
        rows = await store.list_all(request.app.state.runtime.pool, settings(request).fiscal_year)
        return [CommitmentView.of(r) for r in rows if principal.can_act_for(r["region_code"])]

    @api.get("/commitments/{region_code}", response_model=CommitmentView, summary="A region's commitment",
             responses=error(404))
    async def get_region(region_code: RegionCode, request: Request, response: Response,
                         principal: Principal = Depends(require(*ANY_ROLE))) -> CommitmentView:
        _own_region(principal, region_code)
        row = await store.get_by_region(request.app.state.runtime.pool, region_code, settings(request).fiscal_year)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no commitment request for region {region_code}")
        return _view(response, row)

    @api.put("/commitments/{region_code}/draft", response_model=CommitmentView, summary="Save a draft (region)",
             responses=WRITE_ERRORS, openapi_extra=body_limit(128 * 1024))
    async def put_draft(region_code: RegionCode, body: CommitmentIn, request: Request, response: Response,
                        principal: Principal = Depends(_region_operator_of_path),
                        if_match: str | None = IF_MATCH) -> CommitmentView:
        rt = request.app.state.runtime
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                row = await ops.save_draft(conn, lambda p: rt.outbox.add(conn, p), body=body.body_for(region_code),
                                           fiscal_year=settings(request).fiscal_year, actor=_actor(principal),
                                           now=now(request), expected_version=_if_match(if_match))
        except DOMAIN_ERRORS as exc:
            raise _error(exc) from exc
        return _view(response, row)

    @api.post("/commitments/{region_code}/submit", response_model=CommitmentView,
              summary="Submit or resubmit (region); without a body the saved draft is submitted",
              responses=WRITE_ERRORS, openapi_extra=body_limit(128 * 1024))
    async def post_submit(region_code: RegionCode, request: Request, response: Response,
                          body: CommitmentIn | None = None,
                          principal: Principal = Depends(_region_operator_of_path),
                          if_match: str | None = IF_MATCH,
                          idempotency_key: str | None = Header(default=None, pattern=IDEMPOTENCY_KEY)) -> CommitmentView:
        rt = request.app.state.runtime
        submission_id = f"http:{region_code}:{idempotency_key or uuid.uuid4()}"
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                row, fresh = await ops.submit(
                    conn, lambda p: rt.outbox.add(conn, p), region_code=region_code,
                    body=body.body_for(region_code) if body else None, fiscal_year=settings(request).fiscal_year,
                    submission_id=submission_id, channel="http", actor=_actor(principal), now=now(request),
                    expected_version=_if_match(if_match))
        except DOMAIN_ERRORS as exc:
            raise _error(exc) from exc
        log.info("commitment submitted" if fresh else "repeated submission ignored", region_code=region_code,
                 commitment_id=str(row["commitment_id"]), principal=principal.key_id)
        return _view(response, row)

    async def _review(commitment_id: uuid.UUID, action: Action, request: Request, response: Response,
                      principal: Principal, if_match: str | None, **details: Any) -> CommitmentView:
        rt = request.app.state.runtime
        region = principal.region_code if principal.role is Role.REGION_OPERATOR else None
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                row = await ops.review(conn, lambda p: rt.outbox.add(conn, p), commitment_id=commitment_id,
                                       action=action, actor=_actor(principal), now=now(request),
                                       expected_version=_if_match(if_match), region_of_actor=region, **details)
        except DOMAIN_ERRORS as exc:
            raise _error(exc) from exc
        log.info("commitment reviewed", action=action.value, commitment_id=str(commitment_id),
                 status=row["status"], principal=principal.key_id)
        return _view(response, row)

    conflict = {"responses": WRITE_ERRORS, "openapi_extra": body_limit(16 * 1024)}

    @api.post("/commitments/{commitment_id}/verify", response_model=CommitmentView, **conflict,
              summary="Verify (Disnakertrans)")
    async def verify(commitment_id: uuid.UUID, request: Request, response: Response, body: NoteIn | None = None,
                     principal: Principal = Depends(require(Role.DISNAKERTRANS_REVIEWER)),
                     if_match: str | None = IF_MATCH) -> CommitmentView:
        return await _review(commitment_id, Action.VERIFY, request, response, principal, if_match,
                             note=(body or NoteIn()).note)

    @api.post("/commitments/{commitment_id}/acknowledge", response_model=CommitmentView, **conflict,
              summary="Acknowledge (BPJS Ketenagakerjaan)")
    async def acknowledge(commitment_id: uuid.UUID, request: Request, response: Response,
                          body: NoteIn | None = None, principal: Principal = Depends(require(Role.BPJS_REVIEWER)),
                          if_match: str | None = IF_MATCH) -> CommitmentView:
        return await _review(commitment_id, Action.ACKNOWLEDGE, request, response, principal, if_match,
                             note=(body or NoteIn()).note)

    @api.post("/commitments/{commitment_id}/return", response_model=CommitmentView, **conflict,
              summary="Return for revision with reasons (Disnakertrans from submitted, BPJS from verified)")
    async def return_(commitment_id: uuid.UUID, body: ReturnIn, request: Request, response: Response,
                      principal: Principal = Depends(require(Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER)),
                      if_match: str | None = IF_MATCH) -> CommitmentView:
        return await _review(commitment_id, Action.RETURN, request, response, principal, if_match,
                             reasons=body.reasons)

    @api.post("/commitments/{commitment_id}/withdraw", response_model=CommitmentView, **conflict,
              summary="Withdraw (the region, or the organizer)")
    async def withdraw(commitment_id: uuid.UUID, request: Request, response: Response, body: NoteIn | None = None,
                       principal: Principal = Depends(require(Role.REGION_OPERATOR, Role.ORGANIZER)),
                       if_match: str | None = IF_MATCH) -> CommitmentView:
        return await _review(commitment_id, Action.WITHDRAW, request, response, principal, if_match,
                             note=(body or NoteIn()).note)

    @api.post("/commitments/{commitment_id}/deadline", response_model=CommitmentView, **conflict,
              summary="Extend the deadline (organizer); reminders and the overdue timer move")
    async def extend(commitment_id: uuid.UUID, body: ExtendIn, request: Request, response: Response,
                     principal: Principal = Depends(require(Role.ORGANIZER)),
                     if_match: str | None = IF_MATCH) -> CommitmentView:
        rt = request.app.state.runtime
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                row = await ops.extend_deadline(
                    conn, lambda p: rt.outbox.add(conn, p), commitment_id=commitment_id,
                    deadline=as_wita(body.deadline), leads=settings(request).deadline_reminder_leads,
                    reason=body.reason, actor=_actor(principal), now=now(request),
                    expected_version=_if_match(if_match))
        except DOMAIN_ERRORS as exc:
            raise _error(exc) from exc
        return _view(response, row)

    @api.get("/commitments/{commitment_id}/audit", response_model=list[AuditView], summary="Audit trail",
             responses=error(404))
    async def audit(commitment_id: uuid.UUID, request: Request,
                    principal: Principal = Depends(require(*ANY_ROLE))) -> list[AuditView]:
        pool = request.app.state.runtime.pool
        row = await store.get(pool, commitment_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no commitment {commitment_id}")
        _own_region(principal, row["region_code"])
        return [AuditView(**{**dict(r), "at": as_wita(r["at"])}) for r in await store.audit_trail(pool, commitment_id)]

    @api.get("/summary", summary="Committed and realized workers, budget and coverage: province and regions")
    async def get_summary(request: Request, principal: Principal = Depends(require(*ANY_ROLE))) -> dict[str, Any]:
        pool = request.app.state.runtime.pool
        fy = settings(request).fiscal_year
        return build_summary(fy, await store.list_all(pool, fy), await store.realization_totals(pool, fy))

    return api
