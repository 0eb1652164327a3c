from datetime import timedelta

from pydantic import Field, SecretStr, TypeAdapter, field_validator

from shared.contracts.text import WebUrl
from shared.platform.settings import Port, ServiceSettings, service_config

from .domain import DelegationPolicy, parse_lead

# DEVELOPMENT ONLY (NTB_ENV=development): lets `make demo` and tests run without configuration.
# Production must set INVITATIONS_RSVP_SECRET; this value is refused there (shared.platform.settings).
DEV_RSVP_SECRET = "dev-only-rsvp-secret-do-not-use-in-production"


class InvitationsSettings(ServiceSettings):
    model_config = service_config("INVITATIONS_")

    service_name: str = "invitations"
    db_schema: str = Field(default="invitations", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: Port = 8001
    rsvp_secret: SecretStr | None = Field(
        default=None,  # NTB_ENV=development: DEV_RSVP_SECRET; production refuses to start without one
        description="HMAC-SHA256 key signing RSVP links; required (32+ characters) unless NTB_ENV=development",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8001", description="Base of the RSVP links sent to invitees"
    )
    reminder_leads: list[str] = Field(
        default=["P3D", "P1D"],
        description="ISO 8601 durations before the start at which invitees are reminded, e.g. P3D, PT2M",
    )

    rsvp_closes_before: timedelta = Field(
        default=timedelta(hours=12), ge=timedelta(0),
        description="Answers close this long before the start (until the start for a meeting called at shorter notice)")

    delegation_max: int = Field(default=3, ge=1, le=20,
                                description="Delegates one invitation may name over its life (withdrawn ones count)")
    delegation_min_interval: timedelta = Field(default=timedelta(minutes=10), ge=timedelta(0),
                                               description="Minimum time between two delegations of one invitation")
    delegation_email_domains: list[str] = Field(
        default=["go.id"], min_length=1,
        description="A delegate's e-mail must be under one of these domains (or the invitee's own domain)")

    @property
    def delegation_policy(self) -> DelegationPolicy:
        return DelegationPolicy(self.delegation_max, self.delegation_min_interval,
                                tuple(self.delegation_email_domains))

    @field_validator("reminder_leads")
    @classmethod
    def _leads_parse(cls, leads: list[str]) -> list[str]:
        for lead in leads:
            parse_lead(lead)  # raises ValueError with the reason
        if len(set(leads)) != len(leads):
            raise ValueError("reminder leads must be distinct")
        return leads

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        # RSVP links are WebUrl in the events: a base that could not make one is refused at start-up.
        TypeAdapter(WebUrl).validate_python(url)
        return url.rstrip("/")

    def fill_development_defaults(self) -> None:
        if self.rsvp_secret is None:
            self.rsvp_secret = SecretStr(DEV_RSVP_SECRET)

    def secrets_to_check(self) -> list[tuple[str, SecretStr | None, int]]:
        return [*super().secrets_to_check(), ("INVITATIONS_RSVP_SECRET", self.rsvp_secret, 32)]
