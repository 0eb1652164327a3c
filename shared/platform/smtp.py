"""Sending one message over SMTP, with the relay settings every service that mails uses.

A service that mails rarely (commitments' sign-in links) opens a connection per message: TLS as
configured (STARTTLS required, offered, or implicit TLS), login when a username is set; the
transaction itself is `smtp_session.Session`'s, the one notifications' sender pipelines. The
outcome (`SendResult`, `classify`) is the one notifications' deliveries have too: 4xx and
connection trouble are transient (retry later), 5xx permanent. The detail never quotes an
address: servers echo recipients back in their replies.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import Literal

import aiosmtplib
from pydantic import Field, SecretStr, model_validator

from shared.platform.logging import redact_text
from shared.platform.settings import ServiceSettings
from shared.platform.smtp_session import Session

Outcome = Literal["sent", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str  # the From header, "Name <address>"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool | None = None  # True: require STARTTLS; None: when the server offers it; False: never
    use_tls: bool = False  # implicit TLS (port 465)
    timeout_seconds: float = 30.0
    local_hostname: str | None = None  # name sent in EHLO; default: this host's FQDN

    @property
    def envelope_from(self) -> str:
        found = getaddresses([self.sender])
        return found[0][1] if found and found[0][1] else self.sender


class SmtpRelaySettings(ServiceSettings):
    """The settings of a service that mails through an SMTP relay, checked the same way in each.

    Production mails only through an authenticated relay: a missing username, or a missing or
    weak password, refuses the start like a placeholder secret (NTB_ENV=development allows a
    local sink). A service sets its own `smtp_from`."""

    smtp_host: str = Field(default="127.0.0.1", description="SMTP relay")
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, description="Relay login; required unless development")
    smtp_password: SecretStr | None = Field(default=None, description="Relay password; required (12+) unless development")
    smtp_starttls: bool | None = Field(default=None, description="True: require STARTTLS; None: when offered")
    smtp_use_tls: bool = Field(default=False, description="Implicit TLS (port 465)")
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    smtp_local_hostname: str | None = Field(default=None, description="Name sent in EHLO; default: this host's FQDN")
    smtp_from: str = Field(description="The From header, \"Name <address>\"")

    def secrets_to_check(self) -> list[tuple[str, SecretStr | None, int]]:
        prefix = self.model_config.get("env_prefix", "").upper()
        return [*super().secrets_to_check(), (f"{prefix}SMTP_PASSWORD", self.smtp_password, 12)]

    @model_validator(mode="after")
    def _authenticated_relay_in_production(self) -> SmtpRelaySettings:
        if not self.development and not self.smtp_username:
            prefix = self.model_config.get("env_prefix", "").upper()
            raise ValueError(f"refusing to start in production: {prefix}SMTP_USERNAME is missing "
                             "(the relay must authenticate; NTB_ENV=development for a local sink)")
        return self

    def smtp_config(self) -> SmtpConfig:
        return SmtpConfig(host=self.smtp_host, port=self.smtp_port, sender=self.smtp_from,
                          username=self.smtp_username, password=self.smtp_password, starttls=self.smtp_starttls,
                          use_tls=self.smtp_use_tls, timeout_seconds=self.smtp_timeout_seconds,
                          local_hostname=self.smtp_local_hostname)


def client(config: SmtpConfig) -> aiosmtplib.SMTP:
    """An unconnected client for the relay `config` names (TLS and login as configured)."""
    return aiosmtplib.SMTP(
        hostname=config.host, port=config.port, username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        start_tls=config.starttls, use_tls=config.use_tls, timeout=config.timeout_seconds,
        local_hostname=config.local_hostname)


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", redact_text(self.detail))

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"


# An address in a server's reply ("5.1.1 <sekda@dompukab.go.id> unknown"): dropped, not masked.
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


def _reply(text: object) -> str:
    """A server's reply text without the addresses it quotes back."""
    return " ".join(_ADDRESS.sub("<address>", str(text)).split())


def classify(exc: BaseException) -> SendResult:
    """4xx and connection trouble are transient; 5xx is permanent (the server said no for good).

    The detail keeps the code and the server's words (a reviewer reads why a notice failed) but
    no address: the one outcome of every mail this project sends (notifications' deliveries,
    commitments' sign-in links)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(c >= 500 for c in codes)
        return SendResult("permanent" if permanent else "transient", "SMTP recipient refused: "
                          + "; ".join(f"{r.code} {_reply(r.message)}" for r in exc.recipients))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Our credentials are wrong: an operator fixes the config and the queue then drains.
        return SendResult("transient", f"SMTP authentication failed: {exc.code}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendResult("permanent" if exc.code >= 500 else "transient", f"SMTP {exc.code} {_reply(exc.message)}")
    return SendResult("transient", f"SMTP unavailable: {type(exc).__name__}: {_reply(exc)}")


def text_message(config: SmtpConfig, *, to: str, subject: str, text: str, message_id: str,
                 date: datetime) -> EmailMessage:
    """A plain-text notice (UTF-8; headers RFC 2047-encoded by the standard library)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = config.sender, to, subject
    msg["Date"], msg["Message-ID"] = format_datetime(date), message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a robot
    msg.set_content(text)
    return msg


async def send(config: SmtpConfig, message: EmailMessage, recipient: str) -> SendResult:
    """Send one message on a connection of its own, through the same SMTP transaction as
    notifications' deliveries (`smtp_session.Session`); never raises for SMTP or network trouble."""
    connection = client(config)
    session: Session | None = None
    try:
        session = await Session.open(connection)
        await session.sendmail(config.envelope_from, [recipient], message.as_bytes())
    except ValueError as exc:  # an address that cannot go into an envelope
        return SendResult("permanent", f"address not sendable: {exc}")
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        return classify(exc)
    finally:
        if session is None:
            connection.close()
        else:
            try:
                await asyncio.wait_for(session.quit(), timeout=2)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                session.close()
    return SendResult("sent")
