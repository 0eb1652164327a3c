"""Event payloads built from stored rows (the contracts live in shared/contracts/invitations.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.contracts.common import Contact, MeetingInfo
from shared.platform.wita import as_wita

# iCalendar UIDs must be globally unique and stable; the province's domain scopes them.
CALENDAR_UID_DOMAIN = "rakor.ntbprov.go.id"


def calendar_uid(meeting: Mapping[str, Any]) -> str:
    return f"{meeting['meeting_id']}@{CALENDAR_UID_DOMAIN}"


def meeting_info(meeting: Mapping[str, Any]) -> MeetingInfo:
    """Times carry the +08:00 offset, so an .ics entry or a text renders in WITA without guessing."""
    return MeetingInfo(
        meeting_id=str(meeting["meeting_id"]), title=meeting["title"], agenda=meeting["agenda"],
        starts_at=as_wita(meeting["starts_at"]), ends_at=as_wita(meeting["ends_at"]),
        venue=meeting["venue"], online_url=meeting["online_url"], organizer=meeting["organizer"],
    )


def contact(person: Mapping[str, Any]) -> Contact:
    return Contact(name=person["name"], title=person.get("title") or "", email=person.get("email"),
                   phone=person.get("phone"), webhook_url=person.get("webhook_url"))


def rsvp_url(base_url: str, token: str) -> str:
    """The link mailed to invitees: the RSVP page (the JSON API is at /rsvp/{token})."""
    return f"{base_url}/undangan/{token}"
