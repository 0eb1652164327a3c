"""Real outside parties for the notifications tests: an SMTP server (aiosmtpd) and a webhook listener.

Both listen on 127.0.0.1 on free ports and record what they receive; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.notifications.settings import NotificationsSettings
from shared.contracts import registry
from shared.contracts.registry import EventPayload
from shared.platform.envelope import CloudEvent
from shared.platform.kafka_security import client_options

from ..conftest import BOOTSTRAP, canonical_key, service_settings

WEBHOOK_SECRET = "rahasia-uji-webhook"
REFUSED_PREFIX = "tolak"  # the SMTP server answers 550 for these mailboxes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if address.startswith(REFUSED_PREFIX):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if address in m["X-Envelope-To"].split(",")]


class SmtpServer:
    """aiosmtpd in its own thread; can be started late to play a server that comes back."""

    def __init__(self, port: int, **options: Any) -> None:
        self.port = port
        self.handler = RecordingHandler()
        self._controller: Controller | None = None
        self._options = options  # aiosmtpd's: authenticator=..., auth_require_tls=False for a relay with AUTH

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **self._options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return self.handler.messages


@pytest.fixture
def smtp_server() -> Any:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stopped_smtp_server() -> Any:
    server = SmtpServer(free_port())
    yield server
    server.stop()


@dataclass
class WebhookListener:
    port: int
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    received: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def webhook_listener() -> AsyncIterator[WebhookListener]:
    listener = WebhookListener(free_port())

    async def hook(request: Request) -> JSONResponse:
        listener.received.append({"headers": dict(request.headers), "body": await request.body()})
        code = listener.statuses.pop(0) if listener.statuses else 200
        return JSONResponse({"ok": code < 300}, status_code=code)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=listener.port, log_config=None,
                                           access_log=False, lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield listener
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 5)


def notif_settings(topic_prefix: str, schema: str, smtp_port: int, **overrides: Any) -> NotificationsSettings:
    """Settings tuned for fast tests: quick polling, short leases and backoff."""
    fast: dict[str, Any] = dict(
        smtp_port=smtp_port, smtp_starttls=False, smtp_timeout_seconds=2, webhook_timeout_seconds=2,
        webhook_secret=WEBHOOK_SECRET, delivery_poll_seconds=0.1, delivery_backoff_base_seconds=0.2,
        delivery_backoff_max_seconds=0.5, delivery_lease_seconds=3, timer_poll_seconds=0.2,
    )
    return service_settings(NotificationsSettings, topic_prefix, schema, **(fast | overrides))


class FakeClock:
    """Real time plus an offset the test can move forward (timers, digest)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def event_of(payload: EventPayload, *, event_id: str | None = None) -> CloudEvent:
    spec = registry.spec_for(payload)
    return CloudEvent.new(source="/test", type=spec.type, data=payload.model_dump_json().encode(),
                          id=event_id or str(uuid.uuid4()), correlation_id=f"corr-{uuid.uuid4().hex[:8]}")


async def publish(topic: str, events: list[CloudEvent | tuple[bytes, list]], key: bytes | None = None) -> None:
    """Publish in order; each record keyed by its payload's key unless `key` is given."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", **client_options())
    await producer.start()
    try:
        for item in events:
            value, headers = (item.data, item.to_headers()) if isinstance(item, CloudEvent) else item
            await producer.send_and_wait(topic, value=value, key=key or canonical_key(value, headers),
                                         headers=headers)
    finally:
        await producer.stop()
