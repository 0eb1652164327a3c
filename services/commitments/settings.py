from pydantic import Field

from shared.settings import ServiceSettings, service_config


class CommitmentsSettings(ServiceSettings):
    model_config = service_config("COMMITMENTS_")

    service_name: str = "commitments"
    db_schema: str = Field(default="commitments", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: int = 8002
