"""Request and response models of the HTTP API, and the refusals each operation documents."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, model_validator

from shared.contracts.text import WebUrl, line_field, paragraph_field
from shared.platform.http import error
from shared.platform.wita import as_wita

from . import directory, tokens

ERRORS: dict[int | str, dict[str, Any]] = error(
    404, 409, 410, 422, e404="No such meeting",
    e409="Not possible in the meeting's current state (the reason is in `detail`)",
    e410="The meeting was cancelled", e422="The request breaks a rule (the reason is in `detail`)")
TOKEN_ERRORS = {
    **error(403, 404, 410, e403="The token is malformed or its signature is invalid",
            e404="The token is genuine but its invitation no longer exists",
            e410="The link expired, the meeting was cancelled, or the invitation was withdrawn"),
    409: ERRORS[409],
}
CREDENTIAL = {"x-credential": "No API key: the signed token in the path is the credential."}
# Idempotency keys are opaque tokens the client makes up (a UUID, typically): visible ASCII only.
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
TOKEN = Path(max_length=tokens.MAX_TOKEN_LENGTH, description="The signed token from the invitation's link")


# ---- meetings ----------------------------------------------------------------------------------


class ScheduleMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, line_field(300)] = Field(examples=["Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan"])
    agenda: Annotated[str, paragraph_field(5000)] = ""
    starts_at: datetime = Field(description="Start; a time without offset is read as WITA")
    ends_at: datetime = Field(description="End; a time without offset is read as WITA")
    venue: Annotated[str, line_field(500)] | None = None
    online_url: WebUrl | None = Field(default=None, examples=["https://zoom.us/j/1234567890"])
    organizer: Annotated[str, line_field(200)] = Field(examples=["Wakil Gubernur NTB"])


class RescheduleMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(description="New start; a time without offset is read as WITA")
    ends_at: datetime = Field(description="New end; a time without offset is read as WITA")
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Why it moved, in Bahasa Indonesia")


class CancelMeeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, paragraph_field(1000, min_length=1)] = Field(description="Why, in Bahasa Indonesia")


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
    def of(cls, row: Mapping[str, Any]) -> MeetingView:
        data = dict(row)
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


# ---- the invitee directory ---------------------------------------------------------------------


class DirectoryEntryView(directory.InviteeDetails):
    region_code: str
    role: str
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DirectoryEntryView:
        return cls.model_validate(dict(row))


class ImportResult(BaseModel):
    written: int = Field(description="Seats inserted (or replaced, with replace=true)")
    kept: int = Field(description="Seats already present and left as edited")


# ---- RSVP --------------------------------------------------------------------------------------


class DelegateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, line_field(200)] = Field(description="The representative's full name")
    title: Annotated[str, line_field(300)] = Field(description="Their position")
    email: EmailStr | None = Field(default=None, description="Official e-mail address")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[0-9 ()-]{6,40}$",
                              description="WhatsApp-capable phone number")

    @model_validator(mode="after")
    def _reachable(self) -> DelegateBody:
        if not (self.email or self.phone):
            raise ValueError("give the delegate's e-mail or phone, so the invitation can reach them")
        return self


class RsvpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response: Literal["accepted", "declined", "delegated"]
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Required when declining")
    delegate: DelegateBody | None = Field(default=None, description="Required when delegating")


class InvitationView(BaseModel):
    invitation_id: uuid.UUID
    meeting: MeetingView
    region_code: str
    role: str
    name: str
    title: str
    status: str = Field(description="active or withdrawn")
    response: str | None
    reason: str
    responded_at: datetime | None = Field(description="In WITA")
    delegate_invitation_id: uuid.UUID | None
    delegated_from: uuid.UUID | None
    rsvp_expires_at: datetime = Field(description="In WITA")

    @classmethod
    def of(cls, invitation: Mapping[str, Any], meeting: Mapping[str, Any]) -> InvitationView:
        data = {k: invitation[k] for k in cls.model_fields if k in invitation}
        data["responded_at"] = as_wita(data["responded_at"]) if data["responded_at"] else None
        data["rsvp_expires_at"] = as_wita(data["rsvp_expires_at"])
        return cls(**data, meeting=MeetingView.of(meeting))
