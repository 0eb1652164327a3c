"""HTTP entrypoints: translate requests into domain calls and transactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, Role, require
from shared.contracts.invitations import MeetingScheduled
from shared.logging import get_logger
from shared.wita import as_wita

from . import domain, store

log = get_logger(__name__)


class ScheduleMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=300, examples=["Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan"])
    agenda: str = Field(default="", max_length=5000)
    starts_at: datetime = Field(description="Start; a time without offset is read as WITA")
    ends_at: datetime = Field(description="End; a time without offset is read as WITA")
    venue: str | None = Field(default=None, max_length=500)
    online_url: str | None = Field(default=None, max_length=1000)
    organizer: str = Field(min_length=1, max_length=200, examples=["Wakil Gubernur NTB"])


class MeetingView(BaseModel):
    meeting_id: uuid.UUID
    title: str
    agenda: str
    starts_at: datetime = Field(description="In WITA")
    ends_at: datetime = Field(description="In WITA")
    venue: str | None
    online_url: str | None
    organizer: str
    status: str

    @classmethod
    def of(cls, row: object) -> MeetingView:
        data = dict(row)  # type: ignore[call-overload]
        data["starts_at"], data["ends_at"] = as_wita(data["starts_at"]), as_wita(data["ends_at"])
        return cls.model_validate({k: data[k] for k in cls.model_fields})


def router() -> APIRouter:
    api = APIRouter(prefix="/meetings", tags=["meetings"])

    @api.post("", status_code=status.HTTP_201_CREATED, response_model=MeetingView,
              summary="Schedule a Rakor", responses={422: {"description": "The request breaks a rule"}})
    async def schedule(
        body: ScheduleMeeting,
        request: Request,
        principal: Principal = Depends(require(Role.ORGANIZER)),
        idempotency_key: str | None = Header(default=None, max_length=200),
    ) -> MeetingView:
        try:
            meeting = domain.schedule_meeting(**body.model_dump(), now=datetime.now(UTC))
        except domain.DomainError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        rt = request.app.state.runtime
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

    @api.get("/{meeting_id}", response_model=MeetingView, summary="One meeting")
    async def get(meeting_id: uuid.UUID, request: Request) -> MeetingView:
        row = await store.get_meeting(request.app.state.runtime.pool, meeting_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meeting {meeting_id}")
        return MeetingView.of(row)

    return api
