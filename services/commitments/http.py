"""HTTP API: each route parses, runs one use case in the request's unit of work, and answers a view.

Refusals are the use cases' shared.platform.errors, answered once by create_app's handler; a
write route's unit of work commits before the answer is sent (`shared.platform.http.unit_of_work`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
from fastapi import Depends, Header, HTTPException, Request, Response, status

from shared.contracts.regions import RegionCode, regions
from shared.contracts.roles import Role
from shared.platform.auth import Principal, require
from shared.platform.errors import Forbidden, Invalid, NotFound
from shared.platform.http import api_router, body_limit, error, unit_of_work
from shared.platform.logging import get_logger
from shared.platform.unit_of_work import UnitOfWork
from shared.platform.wita import as_wita

from . import operations as ops
from .schemas import AuditView, CommitmentIn, CommitmentView, ExtendIn, NoteIn, OpenRequestsIn, ReturnIn
from .store import Store
from .summary import summary as build_summary
from .terms import Terms
from .workflow import Action

log = get_logger(__name__)
ANY_ROLE = tuple(Role)

# The ETag this service sends: a quoted version number. ASCII digits only: str.isdigit() also
# admits "²" or Arabic-Indic digits, which int() then refuses (that was a 500).
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,100}$"
IF_MATCH = Header(default=None, pattern=r'^(W/)?"?[0-9]{1,9}"?$',
                  description="The ETag (version) last read: the change applies only to that version (else 412)")
WRITE_ERRORS = error(400, 404, 409, 412, 422, e409="Not allowed from the current state (`detail` names it)",
                     e412="The If-Match version is stale (`detail` names the current state)")
REVIEW: dict[str, Any] = {"responses": WRITE_ERRORS, "openapi_extra": body_limit(16 * 1024)}

api = api_router(tags=["commitments"])


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "If-Match must be the version (ETag) of the commitment")
    return int(match.group(1))


def _own_region(principal: Principal, region_code: str) -> None:
    if not principal.can_act_for(region_code):
        raise Forbidden(f"a key for region {principal.region_code} may not act for region {region_code}")


async def _region_operator_of_path(region_code: RegionCode,
                                   principal: Principal = Depends(require(Role.REGION_OPERATOR))) -> Principal:
    """The region check as a dependency, so another region's key gets 403 before its body is validated."""
    _own_region(principal, region_code)
    return principal


def terms(request: Request) -> Terms:
    return request.app.state.terms


def reader(request: Request) -> Store:
    """GET routes read with the pool (no transaction to hold)."""
    return Store(request.app.state.runtime.pool)


def _view(response: Response, row: asyncpg.Record) -> CommitmentView:
    response.headers["ETag"] = f'"{row["version"]}"'
    return CommitmentView.of(row)


@api.post("/commitments/requests", status_code=status.HTTP_201_CREATED, summary="Open commitment requests",
          responses=error(422), openapi_extra=body_limit(16 * 1024))
async def open_requests(body: OpenRequestsIn, t: Terms = Depends(terms),
                        uow: UnitOfWork[Store] = unit_of_work(require(Role.ORGANIZER))) -> dict[str, Any]:
    deadline = as_wita(body.deadline) if body.deadline else t.deadline_for(uow.now)
    if deadline <= uow.now:
        raise Invalid("the deadline must be in the future")
    opened: list[dict[str, str]] = []
    existing: list[dict[str, str]] = []
    for code in body.regions or list(regions()):
        commitment_id, created = await ops.open_request(uow, region_code=code, fiscal_year=t.fiscal_year,
                                                        deadline=deadline, leads=t.reminder_leads,
                                                        meeting_id=body.meeting_id)
        (opened if created else existing).append({"region_code": code, "commitment_id": str(commitment_id)})
    log.info("commitment requests opened", opened=len(opened), existing=len(existing), principal=uow.actor.id)
    return {"fiscal_year": t.fiscal_year, "deadline": deadline, "opened": opened, "already_open": existing}


@api.get("/commitments", response_model=list[CommitmentView], summary="All commitments of the fiscal year")
async def list_commitments(t: Terms = Depends(terms), store: Store = Depends(reader),
                           principal: Principal = Depends(require(*ANY_ROLE))) -> list[CommitmentView]:
    rows = await store.list_all(t.fiscal_year)
    return [CommitmentView.of(r) for r in rows if principal.can_act_for(r["region_code"])]


@api.get("/commitments/{region_code}", response_model=CommitmentView, summary="A region's commitment",
         responses=error(404))
async def get_region(region_code: RegionCode, response: Response, t: Terms = Depends(terms),
                     store: Store = Depends(reader),
                     principal: Principal = Depends(require(*ANY_ROLE))) -> CommitmentView:
    _own_region(principal, region_code)
    row = await store.get_by_region(region_code, t.fiscal_year)
    if row is None:
        raise NotFound(f"no commitment request for region {region_code}")
    return _view(response, row)


@api.put("/commitments/{region_code}/draft", response_model=CommitmentView, summary="Save a draft (region)",
         responses=WRITE_ERRORS, openapi_extra=body_limit(128 * 1024))
async def put_draft(region_code: RegionCode, body: CommitmentIn, response: Response, t: Terms = Depends(terms),
                    uow: UnitOfWork[Store] = unit_of_work(_region_operator_of_path),
                    if_match: str | None = IF_MATCH) -> CommitmentView:
    row = await ops.save_draft(uow, body=body.body_for(region_code), fiscal_year=t.fiscal_year,
                               expected_version=_if_match(if_match))
    return _view(response, row)


@api.post("/commitments/{region_code}/submit", response_model=CommitmentView,
          summary="Submit or resubmit (region); without a body the saved draft is submitted",
          responses=WRITE_ERRORS, openapi_extra=body_limit(128 * 1024))
async def post_submit(region_code: RegionCode, response: Response, body: CommitmentIn | None = None,
                      t: Terms = Depends(terms), uow: UnitOfWork[Store] = unit_of_work(_region_operator_of_path),
                      if_match: str | None = IF_MATCH,
                      idempotency_key: str | None = Header(default=None, pattern=IDEMPOTENCY_KEY)) -> CommitmentView:
    row, fresh = await ops.submit(uow, region_code=region_code, body=body.body_for(region_code) if body else None,
                                  fiscal_year=t.fiscal_year,
                                  submission_id=f"http:{region_code}:{idempotency_key or uuid.uuid4()}",
                                  channel="http", expected_version=_if_match(if_match))
    log.info("commitment submitted" if fresh else "repeated submission ignored", region_code=region_code,
             commitment_id=str(row["commitment_id"]), principal=uow.actor.id)
    return _view(response, row)


async def _review(uow: UnitOfWork[Store], response: Response, commitment_id: uuid.UUID, action: Action,
                  if_match: str | None, **details: Any) -> CommitmentView:
    row = await ops.review(uow, commitment_id=commitment_id, action=action, expected_version=_if_match(if_match),
                           **details)
    log.info("commitment reviewed", action=action.value, commitment_id=str(commitment_id), status=row["status"],
             principal=uow.actor.id)
    return _view(response, row)


@api.post("/commitments/{commitment_id}/verify", response_model=CommitmentView, **REVIEW,
          summary="Verify (Disnakertrans)")
async def verify(commitment_id: uuid.UUID, response: Response, body: NoteIn | None = None,
                 uow: UnitOfWork[Store] = unit_of_work(require(Role.DISNAKERTRANS_REVIEWER)),
                 if_match: str | None = IF_MATCH) -> CommitmentView:
    return await _review(uow, response, commitment_id, Action.VERIFY, if_match, note=(body or NoteIn()).note)


@api.post("/commitments/{commitment_id}/acknowledge", response_model=CommitmentView, **REVIEW,
          summary="Acknowledge (BPJS Ketenagakerjaan)")
async def acknowledge(commitment_id: uuid.UUID, response: Response, body: NoteIn | None = None,
                      uow: UnitOfWork[Store] = unit_of_work(require(Role.BPJS_REVIEWER)),
                      if_match: str | None = IF_MATCH) -> CommitmentView:
    return await _review(uow, response, commitment_id, Action.ACKNOWLEDGE, if_match, note=(body or NoteIn()).note)


@api.post("/commitments/{commitment_id}/return", response_model=CommitmentView, **REVIEW,
          summary="Return for revision with reasons (Disnakertrans from submitted, BPJS from verified)")
async def return_(commitment_id: uuid.UUID, body: ReturnIn, response: Response,
                  uow: UnitOfWork[Store] = unit_of_work(require(Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER)),
                  if_match: str | None = IF_MATCH) -> CommitmentView:
    return await _review(uow, response, commitment_id, Action.RETURN, if_match, reasons=body.reasons)


@api.post("/commitments/{commitment_id}/withdraw", response_model=CommitmentView, **REVIEW,
          summary="Withdraw (the region, or the organizer)")
async def withdraw(commitment_id: uuid.UUID, response: Response, body: NoteIn | None = None,
                   uow: UnitOfWork[Store] = unit_of_work(require(Role.REGION_OPERATOR, Role.ORGANIZER)),
                   if_match: str | None = IF_MATCH) -> CommitmentView:
    return await _review(uow, response, commitment_id, Action.WITHDRAW, if_match, note=(body or NoteIn()).note)


@api.post("/commitments/{commitment_id}/deadline", response_model=CommitmentView, **REVIEW,
          summary="Extend the deadline (organizer); reminders and the overdue timer move")
async def extend(commitment_id: uuid.UUID, body: ExtendIn, response: Response, t: Terms = Depends(terms),
                 uow: UnitOfWork[Store] = unit_of_work(require(Role.ORGANIZER)),
                 if_match: str | None = IF_MATCH) -> CommitmentView:
    row = await ops.extend_deadline(uow, commitment_id=commitment_id, deadline=as_wita(body.deadline),
                                    leads=t.reminder_leads, reason=body.reason, expected_version=_if_match(if_match))
    return _view(response, row)


@api.get("/commitments/{commitment_id}/audit", response_model=list[AuditView], summary="Audit trail",
         responses=error(404))
async def audit(commitment_id: uuid.UUID, store: Store = Depends(reader),
                principal: Principal = Depends(require(*ANY_ROLE))) -> list[AuditView]:
    row = await store.get(commitment_id)
    if row is None:
        raise NotFound(f"no commitment {commitment_id}")
    _own_region(principal, row["region_code"])
    return [AuditView(**{**dict(r), "at": as_wita(r["at"])}) for r in await store.audit_trail(commitment_id)]


@api.get("/summary", summary="Committed and realized workers, budget and coverage: province and regions")
async def get_summary(t: Terms = Depends(terms), store: Store = Depends(reader),
                      principal: Principal = Depends(require(*ANY_ROLE))) -> dict[str, Any]:
    fy = t.fiscal_year
    return build_summary(fy, await store.list_all(fy), await store.realization_totals(fy))
