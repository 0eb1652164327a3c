"""HTTP entrypoints for organizers: meetings, invitations, attendance, status.

Routes only translate: validate the request, run a command in one transaction, shape the answer.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.platform.auth import Principal, require

from shared.contracts.roles import Role
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.text import WebUrl, line, paragraph
from shared.platform.http import api_router, body_limit, error
from shared.platform.logging import get_logger
from shared.contracts.regions import regions
from shared.platform.wita import as_wita

from . import commands, domain, store

log = get_logger(__name__)

_STATUS_OF = {domain.NotFound: 404, domain.Gone: 410, domain.Conflict: 409, domain.TooSoon: 429}
ERRORS: dict[int | str, dict[str, Any]] = error(
    404, 409, 410, 422, e404="No such meeting", e409="Not possible in the meeting's current state (the reason is in `detail`)",
    e410="The meeting was cancelled", e422="The request breaks a rule (the reason is in `detail`)")
# Idempotency keys are opaque tokens the client makes up (a UUID, typically): visible ASCII only.
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Rule violations become 4xx with the reason; the transaction around them rolls back."""
    try:
        yield
    except domain.DomainError as exc:
        code = next((c for kind, c in _STATUS_OF.items() if isinstance(exc, kind)), 422)
        raise HTTPException(code, str(exc)) from exc


def runtime(request: Request) -> Any:
    return request.app.state.runtime


def deps(request: Request) -> commands.Deps:
    rt = runtime(request)
    return commands.Deps(rt.outbox, rt.settings)


organizer = require(Role.ORGANIZER)
readers = require(Role.ORGANIZER, Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER, Role.OPERATOR)


class ScheduleMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: line(300) = Field(examples=["Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan"])
    agenda: paragraph(5000) = ""
    starts_at: datetime = Field(description="Start; a time without offset is read as WITA")
    ends_at: datetime = Field(description="End; a time without offset is read as WITA")
    venue: line(500) | None = None
    online_url: WebUrl | None = Field(default=None, examples=["https://zoom.us/j/1234567890"])
    organizer: line(200) = Field(examples=["Wakil Gubernur NTB"])


class RescheduleMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(description="New start; a time without offset is read as WITA")
    ends_at: datetime = Field(description="New end; a time without offset is read as WITA")
    reason: paragraph(1000) = Field(default="", description="Why it moved, in Bahasa Indonesia")


class CancelMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: paragraph(1000, min_length=1) = Field(description="Why, in Bahasa Indonesia")


class MeetingView(BaseModel):
    meeting_id: uuid.UUID
    title: str
    agenda: str
    starts_at: datetime = Field(description="In WITA")
    ends_at: datetime = Field(description="In WITA")
    venue: str | None
    online_url: str | None
    organizer: str
    status: str = Field(description="scheduled, cancelled or concluded")

    @classmethod
    def of(cls, row: object) -> MeetingView:
        data = dict(row)  # type: ignore[call-overload]
        data["starts_at"], data["ends_at"] = as_wita(data["starts_at"]), as_wita(data["ends_at"])
        return cls.model_validate({k: data[k] for k in cls.model_fields})


class IssueResult(BaseModel):
    issued: int = Field(description="Invitations created by this call")
    already_issued: int = Field(description="Seats that already had an invitation (left untouched)")
    total: int = Field(description="Invitations of the meeting, delegates not counted")


class AttendanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invitation_ids: list[uuid.UUID] = Field(min_length=1, max_length=200, description="Who came (invitee or delegate)")
    attended: StrictBool = Field(default=True, description="false corrects an earlier entry")


class AttendanceResult(BaseModel):
    updated: list[uuid.UUID]


class SeatStatus(BaseModel):
    invitation_id: uuid.UUID
    role: str = Field(description="sekda, kepala_bpkad, kepala_disnaker or delegate")
    name: str
    title: str
    status: str = Field(description="active or withdrawn")
    response: str | None = Field(description="accepted, declined, delegated, or null when not answered")
    reason: str
    responded_at: datetime | None = Field(description="In WITA")
    attended: bool
    delegated_from: uuid.UUID | None


class RegionStatus(BaseModel):
    region_code: str
    region_name: str
    seats: list[SeatStatus]


class MeetingStatus(BaseModel):
    meeting: MeetingView
    totals: dict[str, int] = Field(description="Original invitations by answer (not_answered included)")
    regions: list[RegionStatus]


def router() -> APIRouter:
    api = api_router(prefix="/meetings", tags=["meetings"])

    @api.post("", status_code=status.HTTP_201_CREATED, response_model=MeetingView,
              summary="Schedule a Rakor", responses={422: ERRORS[422]}, openapi_extra=body_limit(64 * 1024))
    async def schedule(
        body: ScheduleMeeting,
        request: Request,
        principal: Principal = Depends(organizer),
        idempotency_key: str | None = Header(default=None, pattern=IDEMPOTENCY_KEY,
                                             description="Repeating a key returns the meeting it created"),
    ) -> MeetingView:
        rt = runtime(request)
        with domain_errors():
            meeting = domain.schedule_meeting(**body.model_dump(), now=rt.clock())
        async with rt.pool.acquire() as conn, conn.transaction():
            if not await store.insert_meeting(conn, meeting, created_by=principal.key_id,
                                              idempotency_key=idempotency_key):
                existing = await store.meeting_by_key(conn, idempotency_key or "")
                return MeetingView.of(existing)
            event = await rt.outbox.add(conn, MeetingScheduled(
                meeting_id=meeting.meeting_id, title=meeting.title, agenda=meeting.agenda,
                starts_at=meeting.starts_at, ends_at=meeting.ends_at, venue=meeting.venue,
                online_url=meeting.online_url, organizer=meeting.organizer,
            ))
            row = await store.get_meeting(conn, meeting.meeting_id)
        log.info("meeting scheduled", meeting_id=str(meeting.meeting_id), event_id=event.id,
                 event_type=event.type, correlation_id=event.correlation_id, principal=principal.key_id)
        return MeetingView.of(row)

    @api.get("/{meeting_id}", response_model=MeetingView, summary="One meeting", responses={404: ERRORS[404]})
    async def get(meeting_id: uuid.UUID, request: Request) -> MeetingView:
        row = await store.get_meeting(runtime(request).pool, meeting_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meeting {meeting_id}")
        return MeetingView.of(row)

    @api.post("/{meeting_id}/reschedule", response_model=MeetingView, summary="Move the meeting (reminders follow)",
              responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(16 * 1024))
    async def reschedule(meeting_id: uuid.UUID, body: RescheduleMeeting, request: Request,
                         principal: Principal = Depends(organizer)) -> MeetingView:
        rt = runtime(request)
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                row = await commands.reschedule(conn, deps(request), meeting_id, starts_at=body.starts_at,
                                                ends_at=body.ends_at, reason=body.reason, now=rt.clock())
        log.info("meeting rescheduled", meeting_id=str(meeting_id), principal=principal.key_id)
        return MeetingView.of(row)

    @api.post("/{meeting_id}/cancel", response_model=MeetingView, summary="Call the meeting off (reminders cancelled)",
              responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(16 * 1024))
    async def cancel(meeting_id: uuid.UUID, body: CancelMeeting, request: Request,
                     principal: Principal = Depends(organizer)) -> MeetingView:
        rt = runtime(request)
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                row = await commands.cancel(conn, deps(request), meeting_id, reason=body.reason, now=rt.clock())
        log.info("meeting cancelled", meeting_id=str(meeting_id), principal=principal.key_id)
        return MeetingView.of(row)

    @api.post("/{meeting_id}/invitations", response_model=IssueResult,
              summary="Invite every seat of the directory (idempotent: issuing twice duplicates nothing)",
              responses={k: ERRORS[k] for k in (404, 409, 410)})
    async def issue(meeting_id: uuid.UUID, request: Request,
                    principal: Principal = Depends(organizer)) -> IssueResult:
        rt = runtime(request)
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                result = await commands.issue_invitations(conn, deps(request), meeting_id, rt.clock())
        log.info("invitations issued", meeting_id=str(meeting_id), principal=principal.key_id, **result)
        return IssueResult(**result)

    @api.post("/{meeting_id}/attendance", response_model=AttendanceResult, summary="Record who attended",
              responses={k: ERRORS[k] for k in (404, 409, 410, 422)}, openapi_extra=body_limit(32 * 1024))
    async def attendance(meeting_id: uuid.UUID, body: AttendanceBody, request: Request,
                         principal: Principal = Depends(organizer)) -> AttendanceResult:
        rt = runtime(request)
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                updated = await commands.record_attendance(conn, meeting_id, body.invitation_ids,
                                                           attended=body.attended, now=rt.clock())
        log.info("attendance recorded", meeting_id=str(meeting_id), count=len(updated), principal=principal.key_id)
        return AttendanceResult(updated=updated)

    @api.post("/{meeting_id}/conclude", response_model=MeetingView,
              summary="Conclude the meeting: attendance becomes final and is published per region",
              responses={k: ERRORS[k] for k in (404, 409, 410)})
    async def conclude(meeting_id: uuid.UUID, request: Request,
                       principal: Principal = Depends(organizer)) -> MeetingView:
        rt = runtime(request)
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                await commands.conclude(conn, deps(request), meeting_id, rt.clock())
                row = await store.get_meeting(conn, meeting_id)
        log.info("meeting concluded", meeting_id=str(meeting_id), principal=principal.key_id)
        return MeetingView.of(row)

    @api.get("/{meeting_id}/status", response_model=MeetingStatus,
             summary="Who answered what, per region and seat", responses={404: ERRORS[404]})
    async def meeting_status(meeting_id: uuid.UUID, request: Request,
                             _: Principal = Depends(readers)) -> MeetingStatus:
        pool = runtime(request).pool
        meeting = await store.get_meeting(pool, meeting_id)
        if meeting is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meeting {meeting_id}")
        rows = await store.invitations_of(pool, meeting_id)
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

    return api
