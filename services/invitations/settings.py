from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import ServiceSettings, service_config

from .domain import parse_lead

# DEVELOPMENT ONLY: lets `make demo` and tests run without configuration. Production must set
# INVITATIONS_RSVP_SECRET (the settings refuse to load otherwise, see `_secret_set_in_production`).
DEV_RSVP_SECRET = "dev-only-rsvp-secret-do-not-use-in-production"


class InvitationsSettings(ServiceSettings):
    model_config = service_config("INVITATIONS_")

    service_name: str = "invitations"
    db_schema: str = Field(default="invitations", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: int = 8001
    environment: str = Field(default="development", description="development or production")
    rsvp_secret: SecretStr = Field(
        default=SecretStr(DEV_RSVP_SECRET), description="HMAC-SHA256 key signing RSVP links; required in production"
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8001", description="Base of the RSVP links sent to invitees"
    )
    reminder_leads: list[str] = Field(
        default=["P3D", "P1D"],
        description="ISO 8601 durations before the start at which invitees are reminded, e.g. P3D, PT2M",
    )

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
        return url.rstrip("/")

    @model_validator(mode="after")
    def _secret_set_in_production(self) -> "InvitationsSettings":
        if self.environment == "production":
            secret = self.rsvp_secret.get_secret_value()
            if secret == DEV_RSVP_SECRET or len(secret) < 32:
                raise ValueError("INVITATIONS_RSVP_SECRET must be set (32+ characters) in production")
        return self
