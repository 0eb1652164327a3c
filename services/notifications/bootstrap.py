"""Composition root: wires settings, runtime, consumers, the sender, the digest timer and HTTP."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from shared.contracts import commitments, invitations, topics
from shared.contracts.registry import EventPayload
from shared.platform import migrations
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.smtp import SendResult
from shared.platform.timers import Clock, system_clock

from . import digest, domain, handlers, http, http_resend
from .channels import Channels, EmailChannel, WebhookChannel
from .deliveries import Delivery
from .handlers import Routing
from .rendering import Renderer, make_environment
from .sender import Sender
from .settings import NotificationsSettings
from .store import Store

ChannelsFactory = Callable[[NotificationsSettings, httpx.AsyncClient], Channels]
AfterSend = Callable[[Delivery, SendResult], Awaitable[None] | None]

HANDLED: list[type[EventPayload]] = [
    invitations.MeetingScheduled, invitations.MeetingRescheduled, invitations.MeetingCancelled,
    invitations.MeetingConcluded, invitations.InvitationIssued, invitations.InvitationRescheduled,
    invitations.InvitationResponded, invitations.ReminderDue,
    commitments.CommitmentRequested, commitments.CommitmentSubmitted, commitments.CommitmentReturned,
    commitments.CommitmentVerified, commitments.CommitmentAcknowledged, commitments.CommitmentWithdrawn,
    commitments.DeadlineApproaching, commitments.DeadlineExtended, commitments.CommitmentOverdue,
    commitments.RealizationRecorded,
]


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.messaging(), migrations.load("notifications", "services.notifications")]


def _data(override: str | None, name: str) -> Any:
    text = Path(override).read_text("utf-8") if override else \
        resources.files("services.notifications").joinpath("data", name).read_text("utf-8")
    return yaml.safe_load(text)


async def prepare(rt: Runtime, seed: list[dict[str, Any]], settings: NotificationsSettings) -> None:
    """At start, before the first event is consumed: the directory is seeded and the digest timer armed."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await Store(conn).seed_recipients(seed)
        await digest.ensure_armed(conn, rt.clock(), settings.digest_time)


class Sending:
    """The sender as the runtime's background worker, and what it keeps open (the webhooks' HTTP
    client, idle SMTP connections), closed once it has stopped."""

    def __init__(self, settings: NotificationsSettings, channels_factory: ChannelsFactory,
                 after_send: AfterSend | None = None) -> None:
        self._s = settings
        self._channels_factory = channels_factory
        self._after_send = after_send  # fault injection for tests: Sender.after_send
        self._stopping = False
        self.sender: Sender | None = None
        self._http: httpx.AsyncClient | None = None
        self._channels: Channels | None = None

    async def run(self, rt: Runtime) -> None:
        if self._stopping:
            return
        self._http = httpx.AsyncClient(follow_redirects=False)
        self._channels = self._channels_factory(self._s, self._http)
        self.sender = Sender(rt.pool, rt.outbox, self._channels, self._s, clock=rt.clock, metrics=rt.metrics)
        self.sender.after_send = self._after_send
        await self.sender.run()

    def stop(self) -> None:
        """No new sends; those in flight finish and are marked, unsent rows are given back. Only a
        send still in flight after the grace is cut short: it keeps its lease and is retried."""
        self._stopping = True
        if self.sender is not None:
            self.sender.stop()

    async def close(self, _rt: Runtime) -> None:
        if self._channels is not None:
            with contextlib.suppress(Exception):
                await self._channels.close()
            self._channels = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def default_channels(settings: NotificationsSettings, client: httpx.AsyncClient) -> Channels:
    return Channels(EmailChannel(settings), WebhookChannel(settings, client))


def build(settings: NotificationsSettings, *, clock: Clock = system_clock,
          after_send: AfterSend | None = None) -> tuple[Runtime, FastAPI]:
    """The service; `after_send(delivery, attempt)` runs after each send, before its outcome is
    marked (fault injection for tests)."""
    rules = domain.parse_rules(_data(settings.routing_file, "routing.yaml"))
    seed = list(_data(settings.recipients_file, "recipients.yaml").get("recipients") or [])
    renderer = Renderer(make_environment(settings.template_dir, pages_base_url=settings.pages_base_url))
    inbound = [topics.INVITATIONS_EVENTS, topics.COMMITMENTS_EVENTS]
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.NOTIFICATIONS_EVENTS],
                      topics_in=inbound, clock=clock, store=Store)
    runtime.on_start(functools.partial(prepare, seed=seed, settings=settings))
    sending = Sending(settings, default_channels, after_send)
    runtime.background("sender", sending.run, stop=sending.stop,
                       grace_seconds=settings.delivery_stop_grace_seconds)
    runtime.on_stop(sending.close)
    # Batch path: up to 100 records per transaction and per offset commit (docs/performance.md, B1).
    consumer = runtime.consumer(inbound, batch_size=100)
    # Each topic takes exactly the types documented for it: those it does not act on are
    # applied as no-ops, anything else (and malformed records) goes to the dead-letter topic.
    handle = functools.partial(handlers.handle, routing=Routing.of(rules, renderer, settings, runtime.metrics))
    for model in HANDLED:
        consumer.handles(model)(handle)
    runtime.timer(digest.KIND)(functools.partial(digest.build_digest, renderer=renderer, at=settings.digest_time))
    app = create_app("NTB Rakor: notifications", "Notifications to officials and staff, and their delivery log.")
    app.state.runtime = runtime
    app.state.mandatory = frozenset(domain.mandatory_types(rules))
    app.include_router(http.api)
    app.include_router(http_resend.api)
    return runtime, app
