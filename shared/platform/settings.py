"""Base settings every service extends with its own env prefix."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.kafka_security import KafkaSecurity, read_secret_file

# A TCP port to listen on or connect to; 0 (listen only) lets the system pick one.
Port = Annotated[int, Field(ge=0, le=65535)]

# DEVELOPMENT ONLY (NTB_ENV=development): the API key pepper of `make demo` and the tests.
DEVELOPMENT_API_KEY_PEPPER = "dev-only-api-key-pepper-do-not-use-in-production"
# Values that were published (in this repository's code, docs, compose file or history): a service
# in production refuses them, as it refuses anything that reads as a placeholder.
PUBLISHED_SECRETS = frozenset({
    DEVELOPMENT_API_KEY_PEPPER,
    "dev-only-rsvp-secret-do-not-use-in-production",
    "change-me-rsvp-secret-of-at-least-32-characters",
    "change-me-webhook-secret",
    "ntb", "postgres", "password", "secret",
})
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "placeholder", "example", "dev-only", "demo-only",
                      "do-not-use", "insecure", "not-a-secret", "replace-me", "your-", "xxxx", "todo")
DEVELOPMENT_DATABASE_URL = "postgresql://ntb:ntb@127.0.0.1:15432/ntb"


_DATABASE_ONLY = contextvars.ContextVar("settings_database_only", default=False)


@contextlib.contextmanager
def database_only() -> Iterator[None]:
    """Settings read inside check only the database's secret: `migrate` uses nothing else, so the
    migration Job is not handed the RSVP, SMTP, webhook or pepper secrets just to pass the check."""
    token = _DATABASE_ONLY.set(True)
    try:
        yield
    finally:
        _DATABASE_ONLY.reset(token)


def secret_problem(value: SecretStr | str | None, *, min_length: int) -> str | None:
    """Why a secret cannot be used in production (None when it can). Never quotes the value."""
    if value is None:
        return "missing"
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        return "missing"
    if text in PUBLISHED_SECRETS or any(word in text.lower() for word in _PLACEHOLDER_WORDS):
        return "a published default or a placeholder"
    if len(text) < min_length:
        return f"shorter than {min_length} characters"
    if len(set(text)) < min(8, min_length):
        return "too few distinct characters to be a generated secret"
    return None


class ServiceSettings(BaseSettings):
    """Settings common to the three services.

    Subclasses set `model_config = service_config("INVITATIONS_")`. The stack-wide
    variables KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are read without prefix so one
    export configures every service; each service owns its own schema in that database.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: Literal["production", "development"] = Field(
        default="production",
        validation_alias=AliasChoices("NTB_ENV", "environment"),
        description="production (the default) refuses missing, default or placeholder secrets; development "
                    "(selected by `make demo`, `make up` and the tests) allows the built-in development values",
    )
    service_name: str = Field(description="Name used in logs, consumer groups and CloudEvents source")
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers")
    )
    kafka_security: KafkaSecurity = Field(
        default_factory=KafkaSecurity, description="TLS / SASL of every Kafka client (KAFKA_SECURITY_PROTOCOL ...)"
    )
    database_url: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_DATABASE_URL),
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9._-]*$",
        validation_alias=AliasChoices("TOPIC_PREFIX", "topic_prefix"),
        description="Prepended to every topic name: separates environments and test runs on one cluster",
    )
    db_schema: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema the service owns")
    db_pool_min: int = Field(default=1, ge=1, le=200)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON lines; default: when stderr is not a TTY")
    topic_partitions: int = Field(default=3, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=32, description="Replicas a topic must have (production: 3)")
    topic_min_insync_replicas: int = Field(default=1, ge=1, le=32, description="min.insync.replicas wanted (production: 2)")
    topics_provision: Literal["verify", "create"] = Field(
        default="verify",
        validation_alias=AliasChoices("TOPICS_PROVISION", "topics_provision"),
        description="verify: refuse to start unless `ntbctl topics apply` provisioned the topics; "
        "create: create missing ones at start (tests with per-run topic prefixes)",
    )
    outbox_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How long an idle relay waits without a NOTIFY before it looks anyway "
                                        "(the fallback: committed rows wake it at once)")
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    timer_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="The longest the timer wheel sleeps: it sleeps until the next timer is due "
                                        "and a newly scheduled timer wakes it (NOTIFY); at most this long")
    consumer_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts for an unexpected handler error before dead-lettering"
    )
    retry_backoff_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    consumer_fetch_max_wait_ms: int = Field(
        default=5000, ge=10, le=30_000, description="How long the broker holds a consumer's fetch while there is "
        "nothing to read (a record that arrives answers it at once): the idle consumer's polling rate. Heartbeats "
        "use their own connection, so this does not delay failure detection; it bounds how long a consumer that "
        "rewound after a failed batch waits for the fetch already in flight (was 2000, aiokafka's 500)")
    consumer_fetch_busy_wait_ms: int = Field(
        default=50, ge=1, le=30_000, description="How long the broker holds a fetch that leaves out a partition "
        "whose fetched records the service has not taken yet (aiokafka sends such a fetch while it holds them). A "
        "record that follows on that partition waits for this fetch, so it is short; a fetch covering every "
        "partition keeps consumer_fetch_max_wait_ms (see shared.platform.kafka_fetch)")
    consumer_fetcher_timeout_ms: int = Field(
        default=2000, ge=10, le=30_000, description="The longest aiokafka's background fetcher waits before it looks "
        "at its partitions again (its `consumer_timeout_ms`, aiokafka's default 200). Every event it acts on (a fetch "
        "answered, records consumed, a seek, a rebalance, a metadata refresh) wakes it at once, so this bounds only "
        "its idle wake-ups: with 200 the loop ran five times a second per consumer doing nothing")
    consumer_stall_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="A partition with lag and no committed progress for this long is stalled "
                                        "(ntb_consumer_stalled, /readyz detail, a log line naming the record)"
    )

    api_key_pepper: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key over the stored API key secrets (shared.platform.auth), kept out of the database; "
                    "required (32+ characters) unless NTB_ENV=development. Changing it invalidates every key",
    )
    api_key_pepper_file: Path | None = Field(
        default=None, description="File holding the pepper instead (a mounted Secret; a trailing newline is ignored)"
    )

    @property
    def development(self) -> bool:
        return self.environment == "development"

    def fill_development_defaults(self) -> None:
        """Development mode only: put the built-in development values where a secret is unset."""

    def secrets_to_check(self) -> list[tuple[str, SecretStr | None, int]]:
        """(environment variable, value, minimum length) of every secret a service needs in production."""
        password = urlsplit(self.database_url.get_secret_value()).password
        prefix = self.model_config.get("env_prefix", "")
        return [("DATABASE_URL (its password)", SecretStr(password) if password else None, 12),
                (f"{prefix.upper()}API_KEY_PEPPER", self.api_key_pepper, 32)]

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> ServiceSettings:
        if self.api_key_pepper is None and self.api_key_pepper_file is not None:
            try:
                self.api_key_pepper = read_secret_file(self.api_key_pepper_file)
            except (OSError, UnicodeDecodeError) as exc:  # the reason, never the content
                prefix = self.model_config.get("env_prefix", "").upper()
                raise ValueError(f"{prefix}API_KEY_PEPPER_FILE cannot be read: {type(exc).__name__}") from None
        if self.development:
            if self.api_key_pepper is None:
                self.api_key_pepper = SecretStr(DEVELOPMENT_API_KEY_PEPPER)
            self.fill_development_defaults()
            return self
        wanted = self.secrets_to_check()
        if _DATABASE_ONLY.get():
            wanted = [w for w in wanted if w[0].startswith("DATABASE_URL")]
        problems = [f"{name} is {problem}" for name, value, min_length in wanted
                    if (problem := secret_problem(value, min_length=min_length))]
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems)
                             + " (set real secrets, or NTB_ENV=development for a local run)")
        return self


def service_config(prefix: str) -> SettingsConfigDict:
    # No NaN or infinity in any number: a NaN timeout compares false with everything.
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True, allow_inf_nan=False)
