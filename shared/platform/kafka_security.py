"""How every Kafka client of the project authenticates: the one place that builds it.

The settings are stack-wide variables read without a service prefix (like
KAFKA_BOOTSTRAP_SERVERS), so one pod's or process's environment configures all its clients:

    KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default) | PLAIN
    KAFKA_SASL_USERNAME       the principal (each service and each outside system has its own)
    KAFKA_SASL_PASSWORD       or KAFKA_SASL_PASSWORD_FILE (a mounted Secret; trailing newline ignored)
    KAFKA_SSL_CAFILE          PEM bundle that signed the brokers' certificates (default: system CAs)
    KAFKA_SSL_CERTFILE        client certificate (PEM) for mutual TLS, with KAFKA_SSL_KEYFILE
    KAFKA_SSL_KEY_PASSWORD    or KAFKA_SSL_KEY_PASSWORD_FILE, when the key is encrypted
    KAFKA_SSL_CHECK_HOSTNAME  true (default): the broker's certificate must name the host dialled

Secrets are `SecretStr`: their repr, `str()` and `model_dump()` show `**********`, so logging
the settings cannot leak them; only `aiokafka_options()` hands the clear text to the client.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "PLAIN"]


def read_secret_file(path: Path) -> SecretStr:
    # A Secret mounted as a file usually ends with a newline that is not part of the password.
    return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", populate_by_name=True)

    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    sasl_username: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._@=-]+$")
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_key_password_file: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.sasl_password is None and self.sasl_password_file is not None:
            self.sasl_password = read_secret_file(self.sasl_password_file)
        if self.ssl_key_password is None and self.ssl_key_password_file is not None:
            self.ssl_key_password = read_secret_file(self.ssl_key_password_file)
        if self.uses_sasl and (
                not self.sasl_username or self.sasl_password is None or not self.sasl_password.get_secret_value()):
            raise ValueError(f"{self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(f"TLS files are set but KAFKA_SECURITY_PROTOCOL is {self.security_protocol}")
        for path in (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a readable file")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
            keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            password=self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        )
        context.check_hostname = self.ssl_check_hostname
        return context

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            assert self.sasl_password is not None
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
            )
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same, in the shape FastStream's KafkaBroker takes (`security=`)."""
        if self.security_protocol == "PLAINTEXT":
            return None
        context = self.ssl_context()
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        assert self.sasl_username is not None and self.sasl_password is not None
        kind = SASLScram512 if self.sasl_mechanism == "SCRAM-SHA-512" else SASLPlaintext
        return kind(self.sasl_username, self.sasl_password.get_secret_value(), ssl_context=context,
                    use_ssl=self.uses_tls)

    def librdkafka_options(self) -> dict[str, Any]:
        """The same security in librdkafka's words (confluent-kafka clients: tests, ACL tooling)."""
        config: dict[str, Any] = {"security.protocol": self.security_protocol}
        if self.uses_tls and self.ssl_cafile:
            config["ssl.ca.location"] = str(self.ssl_cafile)
        if self.uses_sasl:
            assert self.sasl_password is not None
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                           "sasl.password": self.sasl_password.get_secret_value()})
        return config

    def describe(self) -> dict[str, Any]:
        """What may be logged: protocol, mechanism and principal, never a secret."""
        return {"security_protocol": self.security_protocol,
                "sasl_mechanism": self.sasl_mechanism if self.uses_sasl else None,
                "principal": self.sasl_username if self.uses_sasl else None}


def bootstrap_list(servers: str | list[str]) -> list[str]:
    """`a:9092,b:9092` as the list aiokafka needs: given one string it dials it as one host name."""
    if isinstance(servers, list):
        return servers
    return [s for s in servers.replace(" ", ",").split(",") if s]


def from_env() -> KafkaSecurity:
    return KafkaSecurity()


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """aiokafka keyword arguments for `security`, or for the environment's settings."""
    return (security or from_env()).aiokafka_options()
