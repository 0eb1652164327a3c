"""One family of refusals for every use case, whatever started it.

A use case raises one of these when a rule says no. The HTTP edge answers it with the
status below (shared.platform.http registers the one handler); the consumer dead-letters the
event with the message as the reason (shared.platform.consumer); a timer gives up on it
instead of retrying (shared.platform.timers). Nothing is written: the unit of work's
transaction rolls back with the exception.

Dependency-free, so pure domain modules raise them without pulling in FastAPI or asyncpg.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A rule refused the command. `detail` adds named facts to the HTTP answer (e.g. the current state)."""

    http_status: ClassVar[int] = 422

    def __init__(self, message: str, **detail: str) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Invalid(DomainError):
    """The content breaks a rule (figures, dates, a region it may not name)."""

    http_status = 422


class NotFound(DomainError):
    http_status = 404


class Conflict(DomainError):
    """Not allowed from the current state."""

    http_status = 409


class StaleVersion(Conflict):
    """If-Match named a version that is no longer current (a conflict HTTP answers with 412)."""

    http_status = 412


class Gone(DomainError):
    """It existed but is over (a cancelled meeting, an expired link)."""

    http_status = 410


class Forbidden(DomainError):
    """The actor may not do this, here or on this record."""

    http_status = 403
