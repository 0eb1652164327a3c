from datetime import datetime, timedelta

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.platform.settings import Port, service_config
from shared.platform.smtp import SmtpRelaySettings
from shared.platform.wita import as_wita

from .terms import Terms

# DEVELOPMENT ONLY (NTB_ENV=development); production refuses it (shared.platform.settings).
DEV_SESSION_SECRET = "dev-only-session-secret-do-not-use-in-production"


class CommitmentsSettings(SmtpRelaySettings):
    model_config = service_config("COMMITMENTS_")

    service_name: str = "commitments"
    db_schema: str = Field(default="commitments", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: Port = 8002
    fiscal_year: int = Field(default=2026, ge=2020, le=2100, description="The budget year commitments are for")
    deadline: datetime | None = Field(
        default=None, description="Absolute submission deadline; a time without offset is read as WITA")
    deadline_days: int = Field(default=30, ge=1, le=366, description="Otherwise: days after the request opens")
    deadline_after: timedelta | None = Field(
        default=None, description="ISO 8601 duration (e.g. PT10M) overriding deadline_days: compressed demo clocks")
    deadline_reminder_leads: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=1)],
        description='Reminders this long before the deadline, ISO 8601 durations (JSON list, e.g. ["P7D","PT1M"])')

    # Staff pages: sign-in by a link mailed to the address in the staff directory.
    session_secret: SecretStr | None = Field(
        default=None, description="HMAC key of session cookies and sign-in forms; required (32+) unless development")
    session_hours: float = Field(default=8.0, gt=0, le=24, description="How long a session lasts")
    sign_in_link_minutes: float = Field(default=15.0, gt=0, le=60, description="How long a mailed link works")
    public_base_url: str = Field(default="http://127.0.0.1:8002", description="Base of the links mailed to staff")
    staff_file: str | None = Field(default=None, description="Staff directory YAML (default: data/staff.yaml)")
    # The relay for sign-in links (mailed directly, not via Kafka): shared.platform.smtp.SmtpRelaySettings.
    smtp_from: str = "Sistem Rakor NTB <rakor@ntbprov.go.id>"
    sign_in_mail_max_attempts: int = Field(
        default=10, ge=1, le=100,
        description="Transient SMTP failures of one sign-in mail retried up to this (while the link lasts)")
    sign_in_mail_backoff_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    sign_in_mail_backoff_max_seconds: float = Field(default=60.0, gt=0, le=86_400)
    sign_in_mail_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="The longest the sign-in mailer sleeps: it sleeps until the next pending mail "
        "is due, and a link requested in this process wakes it at once (was a 2 s poll)")
    sign_in_mail_lease_seconds: float = Field(
        default=120.0, gt=0, le=86_400, description="A mail claimed and not marked by then is tried again (the sender died)")

    def fill_development_defaults(self) -> None:
        if self.session_secret is None:
            self.session_secret = SecretStr(DEV_SESSION_SECRET)

    def secrets_to_check(self) -> list[tuple[str, SecretStr | None, int]]:
        # Production mails sign-in links only through an authenticated relay, as notifications does.
        return [*super().secrets_to_check(), ("COMMITMENTS_SESSION_SECRET", self.session_secret, 32)]

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "CommitmentsSettings":
        if self.sign_in_mail_lease_seconds <= self.smtp_timeout_seconds * 3:
            raise ValueError("sign_in_mail_lease_seconds must exceed three SMTP timeouts (connect, send, quit)")
        return self

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

    def terms(self) -> Terms:
        return Terms.of(self)

    def deadline_for(self, opened_at: datetime) -> datetime:
        return self.terms().deadline_for(opened_at)
