"""Value objects shared by several payloads."""

from __future__ import annotations

import enum

from pydantic import AwareDatetime, EmailStr, Field

from ..regions import RegionCode
from .registry import EventPayload


class OfficialRole(enum.StrEnum):
    SEKDA = "sekda"
    KEPALA_BPKAD = "kepala_bpkad"
    KEPALA_DISNAKER = "kepala_disnaker"
    DELEGATE = "delegate"


class Contact(EventPayload):
    """How to reach a person. Personal data: masked in logs."""

    name: str = Field(min_length=1, max_length=200, description="Full name with honorifics as written on letters")
    title: str = Field(default="", max_length=300, description="Position, e.g. 'Sekretaris Daerah Kabupaten Dompu'")
    email: EmailStr | None = Field(default=None, description="Official e-mail address (usually .go.id)")
    phone: str | None = Field(default=None, max_length=40, description="WhatsApp-capable phone number, E.164")
    webhook_url: str | None = Field(default=None, max_length=1000, description="Gateway or office-system webhook")


class MeetingInfo(EventPayload):
    """Enough of a meeting to render an invitation or a reminder without a lookup."""

    meeting_id: str = Field(description="Meeting identifier (UUID)")
    title: str = Field(description="Meeting title")
    agenda: str = Field(default="", description="Agenda text in Bahasa Indonesia")
    starts_at: AwareDatetime = Field(description="Start, RFC 3339 with offset (shown in WITA)")
    ends_at: AwareDatetime = Field(description="End, RFC 3339 with offset (shown in WITA)")
    venue: str | None = Field(default=None, description="Physical venue, if any")
    online_url: str | None = Field(default=None, description="Online meeting link, if any")
    organizer: str = Field(description="Convening office or official")


class RegionRef(EventPayload):
    region_code: RegionCode = Field(description="Kemendagri code, e.g. 52.01 (SIPD's 5201 is accepted)")
