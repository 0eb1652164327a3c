"""Facts published by the invitations service."""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, Field, model_validator

from .registry import EventPayload, registry
from .topics import INVITATIONS_EVENTS


@registry.event(
    "ntb.invitations.meeting.scheduled.v1",
    topic=INVITATIONS_EVENTS,
    key=lambda p: str(p.meeting_id),
)
class MeetingScheduled(EventPayload):
    """The province scheduled a coordination meeting (Rakor)."""

    meeting_id: uuid.UUID = Field(description="Identifier of the meeting; the Kafka key")
    title: str = Field(min_length=1, max_length=300, description="Title shown on invitations")
    agenda: str = Field(default="", max_length=5000, description="Agenda text in Bahasa Indonesia")
    starts_at: AwareDatetime = Field(description="Start, RFC 3339 with offset (shown to people in WITA)")
    ends_at: AwareDatetime = Field(description="End, RFC 3339 with offset")
    venue: str | None = Field(default=None, max_length=500, description="Physical venue, if any")
    online_url: str | None = Field(default=None, max_length=1000, description="Online meeting link, if any")
    organizer: str = Field(min_length=1, max_length=200, description="Organizing office")

    @model_validator(mode="after")
    def _ends_after_start(self) -> MeetingScheduled:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


