from datetime import datetime, timedelta

from pydantic import Field, field_validator

from shared.settings import ServiceSettings, service_config
from shared.wita import as_wita


class CommitmentsSettings(ServiceSettings):
    model_config = service_config("COMMITMENTS_")

    service_name: str = "commitments"
    db_schema: str = Field(default="commitments", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: int = 8002
    fiscal_year: int = Field(default=2026, ge=2020, le=2100, description="The budget year commitments are for")
    deadline: datetime | None = Field(
        default=None, description="Absolute submission deadline; a time without offset is read as WITA")
    deadline_days: int = Field(default=30, ge=1, le=366, description="Otherwise: days after the request opens")
    deadline_after: timedelta | None = Field(
        default=None, description="ISO 8601 duration (e.g. PT10M) overriding deadline_days: compressed demo clocks")
    deadline_reminder_leads: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=1)],
        description='Reminders this long before the deadline, ISO 8601 durations (JSON list, e.g. ["P7D","PT1M"])')

    @field_validator("deadline")
    @classmethod
    def _wita(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_wita(value)

    @field_validator("deadline_reminder_leads")
    @classmethod
    def _positive(cls, value: list[timedelta]) -> list[timedelta]:
        if any(lead <= timedelta(0) for lead in value):
            raise ValueError("reminder leads must be positive durations")
        return sorted(set(value), reverse=True)

    def deadline_for(self, opened_at: datetime) -> datetime:
        if self.deadline is not None:
            return self.deadline
        return as_wita(opened_at + (self.deadline_after or timedelta(days=self.deadline_days)))
