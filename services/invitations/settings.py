from pydantic import Field

from shared.settings import ServiceSettings, service_config


class InvitationsSettings(ServiceSettings):
    model_config = service_config("INVITATIONS_")

    service_name: str = "invitations"
    db_schema: str = Field(default="invitations", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: int = 8001
