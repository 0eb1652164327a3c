"""Adapters that hand a rendered notice to the outside world: SMTP and signed webhooks.

Each returns an `Attempt`: sent, transient (retry later) or permanent (give up). SMTP
cannot deduplicate, so a crash between the server's acceptance and our mark resends the
same message with the same Message-ID; mail clients and gateways collapse such copies.
Webhooks carry the delivery id as Idempotency-Key for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import httpx

from shared.contracts.notifications import Channel
from shared.platform.logging import redact_text
from shared.platform.tracecontext import TraceParent, parse_traceparent, valid_correlation_id

from . import mime
from .settings import NotificationsSettings
from .smtp import Session
from .signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .domain import message_id


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: str  # sent | transient | permanent
    detail: str = ""

    def __post_init__(self) -> None:
        # The detail becomes a delivery's last_error/reason, which reviewers read and logs carry:
        # SMTP servers quote addresses back, HTTP errors quote the webhook URL (and its token).
        object.__setattr__(self, "detail", redact_text(self.detail))

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"


def _field(row: Any, name: str) -> Any:
    return row.get(name) if hasattr(row, "get") else None


def delivery_trace(row: Any) -> TraceParent:
    """The span of a delivery's sends: in the trace of the event that caused it (a digest, which has
    none, in a trace named by its delivery id). The span id comes from the delivery id, so every
    retry and resend carries the same bytes."""
    return _delivery_trace(str(row["delivery_id"]), _field(row, "traceparent"))


@functools.lru_cache(maxsize=4096)
def _delivery_trace(delivery_id: str, traceparent: str | None) -> TraceParent:
    # Asked for several times per send (the message's headers, the span, the marked event): computed once.
    delivery = uuid.UUID(delivery_id)
    parent = parse_traceparent(traceparent)
    span_id = hashlib.sha256(delivery.bytes).hexdigest()[:16]
    return TraceParent(parent.trace_id if parent else delivery.hex, span_id, parent.flags if parent else "01")


def trace_headers(row: Any) -> list[tuple[str, str]]:
    """traceparent and X-Correlation-ID for a delivery's message (the correlation id only if well formed)."""
    headers = [("traceparent", delivery_trace(row).header())]
    correlation = valid_correlation_id(_field(row, "correlation_id"))
    if correlation is not None:
        headers.append(("X-Correlation-ID", correlation))
    return headers


def build_email(row: Any, *, sender: str, domain: str) -> bytes:
    """The message for a delivery row (see `mime.notice`): the same bytes on every retry."""
    delivery_id = str(row["delivery_id"])
    return mime.notice(
        message_id=message_id(row["delivery_id"], domain), date=row["created_at"], sender=sender,
        recipient_name=row["recipient_name"], address=row["address"], subject=row["subject"],
        text=row["text_body"], html=row["html_body"], ics=row["ics"], notification_id=delivery_id,
        boundary_seed=delivery_id.replace("-", ""),
        trace_headers=tuple((name.title() if name == "traceparent" else name, value)
                            for name, value in trace_headers(row)),
    )


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


def _reusable(session: Session, exc: BaseException | None = None) -> bool:
    """Whether a connection can carry the next message (a refusal leaves it usable; 421 closes it)."""
    if not session.is_connected:
        return False
    return not isinstance(exc, aiosmtplib.SMTPResponseException) or exc.code != 421


def _stale(exc: BaseException) -> bool:
    """What a server that dropped an idle connection looks like to the next send on it."""
    return isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError) or (
        isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421)


class EmailChannel:
    """Sends over a few long-lived SMTP connections, one per message in flight.

    A new connection per message costs a TCP (and TLS) handshake, EHLO, the login and a
    hostname lookup; reused, the message costs its transaction only, which `smtp.Session`
    pipelines (MAIL, RCPT and DATA in one write) when the server offers PIPELINING. A
    connection idle for longer than `smtp_idle_seconds` is closed rather than reused
    (servers drop idle clients). A reused connection that turns out to be closed by the
    server is replaced and the message sent once more on a new one: the server did not take it.
    """

    def __init__(self, settings: NotificationsSettings) -> None:
        self._s = settings
        self._idle: list[tuple[Session, float]] = []
        # Parsed once, not per message.
        self._envelope_from = mime.sender_mailbox(settings.smtp_from)[1]

    async def _checkout(self) -> tuple[Session, bool]:
        """A connected session and whether it was reused."""
        now = time.monotonic()
        while self._idle:
            session, since = self._idle.pop()
            if session.is_connected and now - since < self._s.smtp_idle_seconds:
                return session, True
            await self._discard(session, quit=True)
        s = self._s
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls, use_tls=s.smtp_use_tls, timeout=s.smtp_timeout_seconds,
            local_hostname=s.smtp_local_hostname,
        )
        try:
            return await Session.open(client), False
        except BaseException:
            client.close()
            raise

    @staticmethod
    async def _discard(session: Session, *, quit: bool = False) -> None:
        with contextlib.suppress(Exception):
            if quit and session.is_connected:
                await asyncio.wait_for(session.quit(), timeout=2)
        session.close()

    async def send(self, row: Any) -> Attempt:
        msg = build_email(row, sender=self._s.smtp_from, domain=self._s.message_id_domain)
        for _ in range(2):
            try:
                session, reused = await self._checkout()
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                return classify_smtp(exc)
            try:
                await session.sendmail(self._envelope_from, [row["address"]], msg)
            except ValueError as exc:  # an address that cannot go into an envelope (validated at the edge)
                self._idle.append((session, time.monotonic()))
                return Attempt("permanent", f"address not sendable: {exc}")
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                if _reusable(session, exc):
                    self._idle.append((session, time.monotonic()))  # a refusal: the envelope was reset
                else:
                    await self._discard(session)
                    if reused and _stale(exc):
                        continue
                return classify_smtp(exc)
            self._idle.append((session, time.monotonic()))
            return Attempt("sent", message_id(row["delivery_id"], self._s.message_id_domain))
        return Attempt("transient", "SMTP connection closed by the server twice")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._discard(session, quit=True) for session, _ in idle))


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
            **dict(trace_headers(row)),
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

    async def close(self) -> None:
        """Close what the adapters keep open (the e-mail channel's idle SMTP connections)."""
        for adapter in self._by_channel.values():
            close = getattr(adapter, "close", None)
            if close is not None:
                await close()
