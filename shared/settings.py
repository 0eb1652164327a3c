"""Base settings every service extends with its own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings common to the three services.

    Subclasses set `model_config = service_config("INVITATIONS_")`. The stack-wide
    variables KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are read without prefix so one
    export configures every service; each service owns its own schema in that database.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = Field(description="Name used in logs, consumer groups and CloudEvents source")
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers")
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://ntb:ntb@127.0.0.1:15432/ntb"),
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9._-]*$",
        validation_alias=AliasChoices("TOPIC_PREFIX", "topic_prefix"),
        description="Prepended to every topic name: separates environments and test runs on one cluster",
    )
    db_schema: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema the service owns")
    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON lines; default: when stderr is not a TTY")
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    timer_poll_seconds: float = Field(default=1.0, gt=0, description="How often due timers are looked for")
    consumer_max_attempts: int = Field(
        default=5, ge=1, description="Attempts for an unexpected handler error before dead-lettering"
    )
    retry_backoff_max_seconds: float = Field(default=30.0, gt=0)
    consumer_stall_seconds: float = Field(
        default=60.0, gt=0, description="A partition with lag and no committed progress for this long is stalled "
                                        "(ntb_consumer_stalled, /readyz detail, a log line naming the record)"
    )


def service_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
