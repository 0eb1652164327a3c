"""HTTP entrypoints for organizers: meetings, invitations, attendance, status.

Routes only translate: the request's unit of work (committed when the route returns) -> a use
case -> the answer. A refusal propagates to the app's one handler (shared.platform.errors).
"""

from __future__ import annotations

import uuid

from fastapi import Depends, Header, status

from shared.contracts.regions import regions
from shared.platform.auth import Principal
from shared.platform.http import api_router, body_limit, unit_of_work
from shared.platform.unit_of_work import UnitOfWork
from shared.platform.wita import as_wita

from . import commands, domain
from .config import Config
from .http_access import config, organizer, reader, readers
from .schemas import (
    ERRORS,
    IDEMPOTENCY_KEY,
    AttendanceBody,
    AttendanceResult,
    CancelMeeting,
    IssueResult,
    MeetingStatus,
    MeetingView,
    RegionStatus,
    RescheduleMeeting,
    ScheduleMeeting,
    SeatStatus,
)
from .store import Store

router = api_router(prefix="/meetings", tags=["meetings"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MeetingView, summary="Schedule a Rakor",
             responses={422: ERRORS[422]}, openapi_extra=body_limit(64 * 1024))
async def schedule(
    body: ScheduleMeeting,
    uow: UnitOfWork[Store] = unit_of_work(organizer),
    idempotency_key: str | None = Header(default=None, pattern=IDEMPOTENCY_KEY,
                                         description="Repeating a key returns the meeting it created"),
) -> MeetingView:
    return MeetingView.of(await commands.schedule(uow, idempotency_key=idempotency_key, **body.model_dump()))


@router.get("/{meeting_id}", response_model=MeetingView, summary="One meeting", responses={404: ERRORS[404]})
async def get(meeting_id: uuid.UUID, store: Store = Depends(reader)) -> MeetingView:
    row = await store.get_meeting(meeting_id)
    if row is None:
        raise domain.NotFound(f"no meeting {meeting_id}")
    return MeetingView.of(row)


@router.post("/{meeting_id}/reschedule", response_model=MeetingView, summary="Move the meeting (reminders follow)",
             responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(16 * 1024))
async def reschedule(meeting_id: uuid.UUID, body: RescheduleMeeting, uow: UnitOfWork[Store] = unit_of_work(organizer),
                     settings: Config = Depends(config)) -> MeetingView:
    return MeetingView.of(await commands.reschedule(uow, settings, meeting_id, starts_at=body.starts_at,
                                                    ends_at=body.ends_at, reason=body.reason))


@router.post("/{meeting_id}/cancel", response_model=MeetingView, summary="Call the meeting off (reminders cancelled)",
             responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(16 * 1024))
async def cancel(meeting_id: uuid.UUID, body: CancelMeeting,
                 uow: UnitOfWork[Store] = unit_of_work(organizer)) -> MeetingView:
    return MeetingView.of(await commands.cancel(uow, meeting_id, reason=body.reason))


@router.post("/{meeting_id}/invitations", response_model=IssueResult,
             summary="Invite every seat of the directory (idempotent: issuing twice duplicates nothing)",
             responses={k: ERRORS[k] for k in (404, 409, 410)})
async def issue(meeting_id: uuid.UUID, uow: UnitOfWork[Store] = unit_of_work(organizer),
                settings: Config = Depends(config)) -> IssueResult:
    return IssueResult(**await commands.issue_invitations(uow, settings, meeting_id))


@router.post("/{meeting_id}/attendance", response_model=AttendanceResult, summary="Record who attended",
             responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(32 * 1024))
async def attendance(meeting_id: uuid.UUID, body: AttendanceBody,
                     uow: UnitOfWork[Store] = unit_of_work(organizer)) -> AttendanceResult:
    updated = await commands.record_attendance(uow, meeting_id, body.invitation_ids, attended=body.attended)
    return AttendanceResult(updated=updated)


@router.post("/{meeting_id}/conclude", response_model=MeetingView,
             summary="Conclude the meeting: attendance becomes final and is published per region",
             responses={k: ERRORS[k] for k in (404, 409, 410)})
async def conclude(meeting_id: uuid.UUID, uow: UnitOfWork[Store] = unit_of_work(organizer)) -> MeetingView:
    return MeetingView.of(await commands.conclude(uow, meeting_id))


@router.get("/{meeting_id}/status", response_model=MeetingStatus,
            summary="Who answered what, per region and seat", responses={404: ERRORS[404]})
async def meeting_status(meeting_id: uuid.UUID, _: Principal = Depends(readers),
                         store: Store = Depends(reader)) -> MeetingStatus:
    meeting = await store.get_meeting(meeting_id)
    if meeting is None:
        raise domain.NotFound(f"no meeting {meeting_id}")
    rows = await store.invitations_of(meeting_id)
    totals = {"accepted": 0, "declined": 0, "delegated": 0, "not_answered": 0}
    for row in rows:
        if row["delegated_from"] is None:
            totals[row["response"] or "not_answered"] += 1
    by_region = {code: RegionStatus(region_code=code, region_name=r.name, seats=[])
                 for code, r in regions().items()}
    for row in rows:
        responded = as_wita(row["responded_at"]) if row["responded_at"] else None
        by_region[row["region_code"]].seats.append(SeatStatus(
            **{k: row[k] for k in SeatStatus.model_fields if k != "responded_at"}, responded_at=responded))
    return MeetingStatus(meeting=MeetingView.of(meeting), totals=totals, regions=list(by_region.values()))
