"""The terms of this year's collection, read once from the settings and passed to the entrypoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from shared.platform.wita import as_wita


class _Settings(Protocol):
    fiscal_year: int
    deadline: datetime | None
    deadline_days: int
    deadline_after: timedelta | None
    deadline_reminder_leads: list[timedelta]


@dataclass(frozen=True, slots=True)
class Terms:
    fiscal_year: int                      # the budget year being collected and tracked
    reminder_leads: tuple[timedelta, ...]  # a reminder this long before the deadline, longest first
    fixed_deadline: datetime | None = None  # one deadline for every region, else `time_allowed` after opening
    time_allowed: timedelta = timedelta(days=30)

    @classmethod
    def of(cls, settings: _Settings) -> Terms:
        return cls(settings.fiscal_year, tuple(settings.deadline_reminder_leads), settings.deadline,
                   settings.deadline_after or timedelta(days=settings.deadline_days))

    def deadline_for(self, opened_at: datetime) -> datetime:
        """In WITA; counted from when the request opened, so a redelivered event yields the same deadline."""
        if self.fixed_deadline is not None:
            return as_wita(self.fixed_deadline)
        return as_wita(opened_at + self.time_allowed)
