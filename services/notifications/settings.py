from datetime import time

from pydantic import Field, SecretStr, model_validator

from shared.platform.settings import Port, service_config
from shared.platform.smtp import SmtpRelaySettings


class NotificationsSettings(SmtpRelaySettings):
    model_config = service_config("NOTIFICATIONS_")

    service_name: str = "notifications"
    db_schema: str = Field(default="notifications", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_port: Port = 8003

    smtp_from: str = "Notifikasi Rakor NTB <notifikasi@disnakertrans.ntbprov.go.id>"  # relay: SmtpRelaySettings
    smtp_idle_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="An SMTP connection idle this long is closed instead of reused")
    smtp_local_hostname: str | None = Field(default=None, description="Name sent in EHLO; default: this host's FQDN")
    message_id_domain: str = Field(default="notifications.ntb-rakor", description="Right side of Message-IDs")

    webhook_secret: SecretStr | None = Field(default=None, description="HMAC key for X-Signature; unset: no webhooks")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    delivery_max_attempts: int = Field(default=8, ge=1, le=100, description="Transient failures retried up to this")
    delivery_backoff_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    delivery_backoff_max_seconds: float = Field(default=900.0, gt=0, le=86_400)
    delivery_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Longest idle sleep: commits wake the sender (LISTEN/NOTIFY) and it wakes "
                                        "itself when the next retry or lease comes due; this is the fallback")
    delivery_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Rows leased per claim and marked per statement")
    delivery_concurrency: int = Field(
        default=4, ge=1, le=64, description="Sends (and SMTP connections) in flight at once")
    delivery_stop_grace_seconds: float = Field(
        default=10.0, ge=0, le=600, description="On stop, how long the sends in flight may take to finish (and be marked)")
    delivery_lease_seconds: float = Field(
        default=120.0, gt=0, le=86_400, description="A claimed delivery not marked by then is retried (the sender died)"
    )

    digest_time: time = Field(default=time(17, 0), description="Daily digest time, WITA")
    pages_base_url: str = Field(
        default="http://127.0.0.1:8002",
        description="Base of the commitments service's staff pages that notices link to (/tinjauan, /komitmen)")
    template_dir: str | None = Field(default=None, description="Folder whose templates override the shipped ones")
    routing_file: str | None = Field(default=None, description="Routing rules; default: the shipped routing.yaml")
    recipients_file: str | None = Field(default=None, description="Directory seed; default: the shipped file")

    def secrets_to_check(self) -> list[tuple[str, SecretStr | None, int]]:
        # Production signs every webhook: an unset key is refused like a placeholder one
        # (NTB_ENV=development allows it). The relay's own checks are SmtpRelaySettings'.
        return [*super().secrets_to_check(), ("NOTIFICATIONS_WEBHOOK_SECRET", self.webhook_secret, 32)]

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "NotificationsSettings":
        # A lease shorter than a send would let a second sender take the row mid-send.
        slowest = max(self.smtp_timeout_seconds, self.webhook_timeout_seconds)
        if self.delivery_lease_seconds <= slowest:
            raise ValueError(f"delivery_lease_seconds must exceed the send timeouts ({slowest}s)")
        return self
