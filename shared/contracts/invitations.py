"""Facts published by the invitations service (topic `ntb.invitations.events`, key: meeting id).

Every event of one meeting shares its key, so consumers see a meeting's history in order.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Protocol

from pydantic import AwareDatetime, Field, model_validator

from shared.contracts.common import Contact, MeetingInfo, OfficialRole
from shared.contracts.regions import RegionCode
from shared.contracts.registry import EventPayload, registry
from shared.contracts.text import WebUrl, line_field, paragraph_field
from shared.contracts.topics import INVITATIONS_EVENTS


class _OfAMeeting(Protocol):
    @property
    def meeting_id(self) -> uuid.UUID: ...


def _meeting_key(payload: _OfAMeeting) -> str:
    return str(payload.meeting_id)


class CalendarEntry(EventPayload):
    """Identity of the meeting's calendar entry, so every update replaces the same .ics item."""

    calendar_uid: str | None = Field(
        default=None, description="Stable iCalendar UID of the meeting's entry (the same on every update)"
    )
    calendar_sequence: int = Field(
        default=0, ge=0, description="iCalendar SEQUENCE: 0 when scheduled, +1 on each reschedule or cancellation"
    )


@registry.event("ntb.invitations.meeting.scheduled.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class MeetingScheduled(EventPayload):
    """The province scheduled a coordination meeting (Rakor)."""

    meeting_id: uuid.UUID = Field(description="Identifier of the meeting; the Kafka key")
    title: Annotated[str, line_field(300)] = Field(description="Title shown on invitations")
    agenda: Annotated[str, paragraph_field(5000)] = Field(default="", description="Agenda text in Bahasa Indonesia")
    starts_at: AwareDatetime = Field(description="Start, RFC 3339 with offset (shown to people in WITA)")
    ends_at: AwareDatetime = Field(description="End, RFC 3339 with offset")
    venue: Annotated[str, line_field(500)] | None = Field(default=None, description="Physical venue, if any")
    online_url: WebUrl | None = Field(default=None, description="Online meeting link, if any")
    organizer: Annotated[str, line_field(200)] = Field(description="Organizing office")

    @model_validator(mode="after")
    def _ends_after_start(self) -> MeetingScheduled:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RsvpResponse(enum.StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    DELEGATED = "delegated"


@registry.event("ntb.invitations.meeting.rescheduled.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class MeetingRescheduled(CalendarEntry):
    """The meeting moved; reminders moved with it."""

    meeting: MeetingInfo = Field(description="The meeting as it now stands")
    meeting_id: uuid.UUID = Field(description="Identifier of the meeting; the Kafka key")
    previous_starts_at: AwareDatetime = Field(description="The start before the change")
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Why it moved, in Bahasa Indonesia")


@registry.event("ntb.invitations.invitation.rescheduled.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class InvitationRescheduled(CalendarEntry):
    """The meeting moved, as told to one invitee: one per active invitation, after MeetingRescheduled.

    It carries that invitee's own RSVP link (as InvitationIssued does), so the notice of the new
    time lets its reader answer or change an answer; MeetingRescheduled, read by every consumer
    of the topic, carries no link of anyone's.
    """

    invitation_id: uuid.UUID = Field(description="The invitation told of the change")
    meeting_id: uuid.UUID = Field(description="The meeting; the Kafka key")
    meeting: MeetingInfo = Field(description="The meeting as it now stands")
    previous_starts_at: AwareDatetime = Field(description="The start before the change")
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Why it moved, in Bahasa Indonesia")
    region_code: RegionCode | None = Field(default=None, description="The invitee's regency/city; none for the province")
    role: OfficialRole = Field(description="Which seat the invitee fills")
    invitee: Contact = Field(description="Who is told, and how to reach them")
    rsvp_url: WebUrl = Field(description="The invitee's own link to the RSVP page (signed token)")
    rsvp_expires_at: AwareDatetime = Field(description="When answers now close (moved with the meeting)")
    response: RsvpResponse | None = Field(default=None, description="The invitee's current answer, if any")


@registry.event("ntb.invitations.meeting.cancelled.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class MeetingCancelled(CalendarEntry):
    """The meeting was called off; pending reminders were cancelled."""

    meeting: MeetingInfo = Field(description="The meeting as it stood when cancelled")
    meeting_id: uuid.UUID = Field(description="Identifier of the meeting; the Kafka key")
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Why, in Bahasa Indonesia")


@registry.event("ntb.invitations.invitation.issued.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class InvitationIssued(CalendarEntry):
    """An invitation went to one official (or to a delegate named by one)."""

    invitation_id: uuid.UUID = Field(description="Identifier of the invitation")
    meeting_id: uuid.UUID = Field(description="The meeting; the Kafka key")
    meeting: MeetingInfo = Field(description="What the invitation is for")
    region_code: RegionCode | None = Field(default=None, description="The invitee's regency/city; none for the province")
    role: OfficialRole = Field(description="Which seat the invitee fills")
    invitee: Contact = Field(description="Who is invited and how to reach them")
    rsvp_url: WebUrl = Field(description="Link with a signed token to accept, decline or delegate")
    rsvp_expires_at: AwareDatetime = Field(description="When the RSVP link stops working")
    delegated_from: uuid.UUID | None = Field(default=None, description="The invitation whose holder delegated")




@registry.event("ntb.invitations.invitation.responded.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class InvitationResponded(EventPayload):
    """An invitee answered (or changed an earlier answer)."""

    invitation_id: uuid.UUID = Field(description="The invitation answered")
    meeting_id: uuid.UUID = Field(description="The meeting; the Kafka key")
    meeting: MeetingInfo = Field(description="The meeting answered for")
    region_code: RegionCode | None = Field(default=None, description="The invitee's regency/city")
    role: OfficialRole = Field(description="The invitee's seat")
    invitee: Contact = Field(description="Who answered")
    response: RsvpResponse = Field(description="accepted, declined or delegated")
    reason: Annotated[str, paragraph_field(1000)] = Field(default="", description="Reason for declining, if given")
    delegate: Contact | None = Field(default=None, description="The representative, when delegated")
    previous_response: RsvpResponse | None = Field(default=None, description="The earlier answer, if changed")
    responded_at: AwareDatetime = Field(description="When the answer was given")


@registry.event("ntb.invitations.reminder.due.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class ReminderDue(EventPayload):
    """A reminder timer fired for an invitee who has not declined."""

    invitation_id: uuid.UUID = Field(description="The invitation reminded of")
    meeting_id: uuid.UUID = Field(description="The meeting; the Kafka key")
    meeting: MeetingInfo = Field(description="The meeting")
    region_code: RegionCode | None = Field(default=None, description="The invitee's regency/city")
    role: OfficialRole = Field(description="The invitee's seat")
    invitee: Contact = Field(description="Who to remind")
    lead: str = Field(description="How long before the start, ISO 8601 duration such as P3D or P1D")
    rsvp_url: WebUrl | None = Field(default=None, description="The invitee's RSVP link (to answer, or change an answer)")
    response: RsvpResponse | None = Field(default=None, description="The invitee's current answer, if any")


class Attendee(EventPayload):
    invitation_id: uuid.UUID = Field(description="The invitation the attendee came on")
    role: OfficialRole = Field(description="The seat, or delegate")
    name: Annotated[str, line_field(200)] = Field(description="Who attended")
    title: Annotated[str, line_field(300, min_length=0)] = Field(default="", description="Their position")
    delegate_for: OfficialRole | None = Field(default=None, description="Whose seat a delegate filled")


class RegionAttendance(EventPayload):
    region_code: RegionCode = Field(description="The regency/city")
    attendees: list[Attendee] = Field(default_factory=list, description="Who attended for it")


@registry.event("ntb.invitations.meeting.concluded.v1", topic=INVITATIONS_EVENTS, key=_meeting_key)
class MeetingConcluded(EventPayload):
    """The Rakor ended; attendance per region is final. Commitments opens requests from this."""

    meeting_id: uuid.UUID = Field(description="The meeting; the Kafka key")
    meeting: MeetingInfo = Field(description="The meeting")
    concluded_at: AwareDatetime = Field(description="When the organizer concluded it")
    attendance: list[RegionAttendance] = Field(description="Per-region attendance, all ten regions listed")
