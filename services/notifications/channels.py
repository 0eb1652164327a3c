"""Adapters that hand a rendered notice to the outside world: SMTP and signed webhooks.

Each returns an `Attempt`: sent, transient (retry later) or permanent (give up). SMTP
cannot deduplicate, so a crash between the server's acceptance and our mark resends the
same message with the same Message-ID; mail clients and gateways collapse such copies.
Webhooks carry the delivery id as Idempotency-Key for the same reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib
import httpx

from shared.contracts.notifications import Channel

from .settings import NotificationsSettings
from .signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .domain import message_id


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: str  # sent | transient | permanent
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"


def build_email(row: Any, *, sender: str, domain: str) -> EmailMessage:
    """The message for a delivery row: plain text + HTML alternative, the .ics attached if any."""
    msg = EmailMessage()
    msg["Message-ID"] = message_id(row["delivery_id"], domain)
    msg["Date"] = format_datetime(row["created_at"])
    msg["From"] = sender
    msg["To"] = formataddr((row["recipient_name"], row["address"]))
    msg["Subject"] = row["subject"]
    msg["X-Notification-Id"] = str(row["delivery_id"])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row["text_body"])
    msg.add_alternative(row["html_body"], subtype="html")
    if row["ics"]:
        msg.add_attachment(row["ics"].encode(), maintype="text", subtype="calendar", filename="undangan.ics",
                           params={"method": "REQUEST"})
    return msg


def classify_smtp(exc: BaseException) -> Attempt:
    """4xx and connection trouble are transient; 5xx is permanent (the server said no for good)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return Attempt("permanent" if codes and all(c >= 500 for c in codes) else "transient", f"SMTP {text}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Our credentials are wrong: an operator fixes the config, the queue then drains.
        return Attempt("transient", f"SMTP authentication failed: {exc.code}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = "permanent" if exc.code >= 500 else "transient"
        return Attempt(kind, f"SMTP {exc.code} {exc.message}")
    return Attempt("transient", f"SMTP unavailable: {type(exc).__name__}: {exc}")


class EmailChannel:
    def __init__(self, settings: NotificationsSettings) -> None:
        self._s = settings

    async def send(self, row: Any) -> Attempt:
        s = self._s
        msg = build_email(row, sender=s.smtp_from, domain=s.message_id_domain)
        try:
            await aiosmtplib.send(
                msg, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls, use_tls=s.smtp_use_tls, timeout=s.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            return classify_smtp(exc)
        return Attempt("sent", msg["Message-ID"])


def webhook_body(row: Any) -> bytes:
    """Deterministic JSON, so every retry of one delivery carries the same bytes."""
    body = {
        "delivery_id": str(row["delivery_id"]),
        "source_event_id": row["source_event_id"],
        "source_event_type": row["source_event_type"],
        "recipient_id": row["recipient_id"],
        "recipient_name": row["recipient_name"],
        "subject": row["subject"],
        "text": row["text_body"],
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def classify_http(status: int) -> Attempt:
    if 200 <= status < 300:
        return Attempt("sent", f"HTTP {status}")
    if status in (408, 425, 429) or status >= 500:
        return Attempt("transient", f"HTTP {status}")
    return Attempt("permanent", f"HTTP {status}")


class WebhookChannel:
    def __init__(self, settings: NotificationsSettings, client: httpx.AsyncClient) -> None:
        self._s = settings
        self._client = client

    async def send(self, row: Any) -> Attempt:
        if self._s.webhook_secret is None:
            return Attempt("transient", "webhook secret not configured (NOTIFICATIONS_WEBHOOK_SECRET)")
        body = webhook_body(row)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: str(row["delivery_id"]),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._s.webhook_secret.get_secret_value(), stamp, body),
        }
        try:
            response = await self._client.post(row["address"], content=body, headers=headers,
                                               timeout=self._s.webhook_timeout_seconds)
        except httpx.HTTPError as exc:
            return Attempt("transient", f"webhook unavailable: {type(exc).__name__}: {exc}")
        return classify_http(response.status_code)


class Channels:
    """The channel adapters by name; `sender.Sender` picks by the delivery's channel."""

    def __init__(self, email: Any, webhook: Any) -> None:
        self._by_channel = {Channel.EMAIL: email, Channel.WEBHOOK: webhook}

    async def send(self, row: Any) -> Attempt:
        return await self._by_channel[Channel(row["channel"])].send(row)
