"""Value objects shared by several payloads."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import AwareDatetime, EmailStr, Field

from shared.contracts.registry import EventPayload
from shared.contracts.text import WebUrl, line_field, paragraph_field


class OfficialRole(enum.StrEnum):
    SEKDA = "sekda"
    KEPALA_BPKAD = "kepala_bpkad"
    KEPALA_DISNAKER = "kepala_disnaker"
    DELEGATE = "delegate"


class Contact(EventPayload):
    """How to reach a person. Personal data: masked in logs."""

    name: Annotated[str, line_field(200)] = Field(description="Full name with honorifics as written on letters")
    title: Annotated[str, line_field(300, min_length=0)] = Field(
        default="", description="Position, e.g. 'Sekretaris Daerah Kabupaten Dompu'")
    email: EmailStr | None = Field(default=None, description="Official e-mail address (usually .go.id)")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[0-9 ()-]{6,40}$",
                              description="WhatsApp-capable phone number, E.164")
    webhook_url: WebUrl | None = Field(default=None, description="Gateway or office-system webhook")


class MeetingInfo(EventPayload):
    """Enough of a meeting to render an invitation or a reminder without a lookup."""

    meeting_id: str = Field(description="Meeting identifier (UUID)")
    title: Annotated[str, line_field(300)] = Field(description="Meeting title")
    agenda: Annotated[str, paragraph_field(5000)] = Field(default="", description="Agenda text in Bahasa Indonesia")
    starts_at: AwareDatetime = Field(description="Start, RFC 3339 with offset (shown in WITA)")
    ends_at: AwareDatetime = Field(description="End, RFC 3339 with offset (shown in WITA)")
    venue: Annotated[str, line_field(500)] | None = Field(default=None, description="Physical venue, if any")
    online_url: WebUrl | None = Field(default=None, description="Online meeting link, if any")
    organizer: Annotated[str, line_field(200)] = Field(description="Convening office or official")
