from pydantic import Field

from shared.settings import ServiceSettings, service_config


class NotificationsSettings(ServiceSettings):
    model_config = service_config("NOTIFICATIONS_")

    service_name: str = "notifications"
    db_schema: str = Field(default="notifications", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: int = 8003
