"""Meeting rules. Pure: no I/O, no clock of its own (callers pass `now`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.wita import as_wita

MAX_DURATION = timedelta(days=3)


class DomainError(ValueError):
    """A command breaks a business rule; the message is shown to the caller."""


@dataclass(frozen=True, slots=True)
class Meeting:
    meeting_id: uuid.UUID
    title: str
    agenda: str
    starts_at: datetime
    ends_at: datetime
    venue: str | None
    online_url: str | None
    organizer: str
    status: str = "scheduled"


def schedule_meeting(
    *,
    title: str,
    agenda: str,
    starts_at: datetime,
    ends_at: datetime,
    venue: str | None,
    online_url: str | None,
    organizer: str,
    now: datetime,
    meeting_id: uuid.UUID | None = None,
) -> Meeting:
    start, end = as_wita(starts_at), as_wita(ends_at)
    if start <= now:
        raise DomainError("starts_at must be in the future")
    if end <= start:
        raise DomainError("ends_at must be after starts_at")
    if end - start > MAX_DURATION:
        raise DomainError("a meeting may last at most 3 days")
    if not (venue or online_url):
        raise DomainError("give a venue, an online link, or both")
    return Meeting(meeting_id or uuid.uuid4(), title, agenda, start, end, venue, online_url, organizer)
