"""Adapters that hand a rendered notice to the outside world: SMTP and signed webhooks.

Each returns a `SendResult` (shared.platform.smtp: the redacted outcome of every mail the
project sends, classified the same way): sent, transient (retry later) or permanent (give up).
SMTP cannot deduplicate, so a crash between the server's acceptance and our mark resends the
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
from typing import Protocol

import aiosmtplib
import httpx

from shared.contracts.notifications import Channel
from shared.platform import smtp
from shared.platform.smtp import SendResult, classify
from shared.platform.smtp_session import Session
from shared.platform.tracecontext import TraceParent, parse_traceparent, valid_correlation_id

from . import mime
from .deliveries import Delivery
from .domain import message_id
from .settings import NotificationsSettings
from .signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


def delivery_trace(d: Delivery) -> TraceParent:
    """The span of a delivery's sends: in the trace of the event that caused it (a digest, which has
    none, in a trace named by its delivery id). The span id comes from the delivery id, so every
    retry and resend carries the same bytes."""
    return _delivery_trace(str(d.delivery_id), d.traceparent)


@functools.lru_cache(maxsize=4096)
def _delivery_trace(delivery_id: str, traceparent: str | None) -> TraceParent:
    # Asked for several times per send (the message's headers, the span, the marked event): computed once.
    delivery = uuid.UUID(delivery_id)
    parent = parse_traceparent(traceparent)
    span_id = hashlib.sha256(delivery.bytes).hexdigest()[:16]
    return TraceParent(parent.trace_id if parent else delivery.hex, span_id, parent.flags if parent else "01")


def trace_headers(d: Delivery) -> list[tuple[str, str]]:
    """traceparent and X-Correlation-ID for a delivery's message (the correlation id only if well formed)."""
    headers = [("traceparent", delivery_trace(d).header())]
    correlation = valid_correlation_id(d.correlation_id)
    if correlation is not None:
        headers.append(("X-Correlation-ID", correlation))
    return headers


def build_email(d: Delivery, *, sender: str, domain: str) -> bytes:
    """The message for a delivery (see `mime.notice`): the same bytes on every retry."""
    delivery_id = str(d.delivery_id)
    if d.created_at is None:  # the Date header is the stored row's, so that a retry sends the same bytes
        raise ValueError(f"delivery {delivery_id} was never stored: it has no created_at for its Date")
    return mime.notice(
        message_id=message_id(d.delivery_id, domain), date=d.created_at, sender=sender,
        recipient_name=d.recipient_name, address=d.address, subject=d.subject or "",
        text=d.text_body or "", html=d.html_body or "", ics=d.ics, notification_id=delivery_id,
        boundary_seed=delivery_id.replace("-", ""),
        trace_headers=tuple((name.title() if name == "traceparent" else name, value)
                            for name, value in trace_headers(d)),
    )


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
    hostname lookup; reused, the message costs its transaction only, which `smtp_session.Session`
    pipelines (MAIL, RCPT and DATA in one write) when the server offers PIPELINING. A
    connection idle for longer than `smtp_idle_seconds` is closed rather than reused
    (servers drop idle clients). A reused connection that turns out to be closed by the
    server is replaced and the message sent once more on a new one: the server did not take it.
    """

    def __init__(self, settings: NotificationsSettings) -> None:
        self._s = settings
        self._idle: list[tuple[Session, float]] = []
        self._config = settings.smtp_config()
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
        client = smtp.client(self._config)
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

    async def send(self, d: Delivery) -> SendResult:
        msg = build_email(d, sender=self._s.smtp_from, domain=self._s.message_id_domain)
        for _ in range(2):
            try:
                session, reused = await self._checkout()
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                return classify(exc)
            try:
                await session.sendmail(self._envelope_from, [d.address], msg)
            except ValueError as exc:  # an address that cannot go into an envelope (validated at the edge)
                self._idle.append((session, time.monotonic()))
                return SendResult("permanent", f"address not sendable: {exc}")
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                if _reusable(session, exc):
                    self._idle.append((session, time.monotonic()))  # a refusal: the envelope was reset
                else:
                    await self._discard(session)
                    if reused and _stale(exc):
                        continue
                return classify(exc)
            self._idle.append((session, time.monotonic()))
            return SendResult("sent", message_id(d.delivery_id, self._s.message_id_domain))
        return SendResult("transient", "SMTP connection closed by the server twice")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._discard(session, quit=True) for session, _ in idle))


def webhook_body(d: Delivery) -> bytes:
    """Deterministic JSON, so every retry of one delivery carries the same bytes."""
    body = {
        "delivery_id": str(d.delivery_id),
        "source_event_id": d.source_event_id,
        "source_event_type": d.source_event_type,
        "recipient_id": d.recipient_id,
        "recipient_name": d.recipient_name,
        "subject": d.subject,
        "text": d.text_body,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def classify_http(status: int) -> SendResult:
    if 200 <= status < 300:
        return SendResult("sent", f"HTTP {status}")
    if status in (408, 425, 429) or status >= 500:
        return SendResult("transient", f"HTTP {status}")
    return SendResult("permanent", f"HTTP {status}")


class WebhookChannel:
    def __init__(self, settings: NotificationsSettings, client: httpx.AsyncClient) -> None:
        self._s = settings
        self._client = client

    async def send(self, d: Delivery) -> SendResult:
        if self._s.webhook_secret is None:
            return SendResult("transient", "webhook secret not configured (NOTIFICATIONS_WEBHOOK_SECRET)")
        body = webhook_body(d)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: str(d.delivery_id),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._s.webhook_secret.get_secret_value(), stamp, body),
            **dict(trace_headers(d)),
        }
        try:
            response = await self._client.post(d.address, content=body, headers=headers,
                                               timeout=self._s.webhook_timeout_seconds)
        except httpx.HTTPError as exc:
            return SendResult("transient", f"webhook unavailable: {type(exc).__name__}: {exc}")
        return classify_http(response.status_code)


class Adapter(Protocol):
    async def send(self, d: Delivery) -> SendResult: ...


class Channels:
    """The channel adapters by name; `sender.Sender` picks by the delivery's channel."""

    def __init__(self, email: Adapter, webhook: Adapter) -> None:
        self._by_channel = {Channel.EMAIL: email, Channel.WEBHOOK: webhook}

    async def send(self, d: Delivery) -> SendResult:
        return await self._by_channel[d.channel].send(d)

    async def close(self) -> None:
        """Close what the adapters keep open (the e-mail channel's idle SMTP connections)."""
        for adapter in self._by_channel.values():
            close = getattr(adapter, "close", None)
            if close is not None:
                await close()
