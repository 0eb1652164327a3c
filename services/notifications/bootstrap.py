"""Composition root: wires settings, runtime, consumers, the sender, the digest timer and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from shared.platform import migrations
from shared.contracts import commitments, invitations, topics
from shared.platform.db import create_pool
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.tasks import cancel_and_wait
from shared.platform.timers import Clock, system_clock

from . import digest, domain, http, http_resend, store
from .channels import Channels, EmailChannel, WebhookChannel
from .handlers import Router
from .rendering import Renderer, make_environment
from .sender import Sender
from .settings import NotificationsSettings

HANDLED = [
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


class NotificationsRuntime(Runtime):
    """The shared runtime plus this service's own loop: the sender of deliveries."""

    def __init__(self, settings: NotificationsSettings, *, channels_factory: Any, seed: list[dict[str, Any]],
                 **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._channels_factory = channels_factory
        self._seed = seed
        self.sender: Sender | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._channels: Channels | None = None
        self.sender_hook: Any = None  # fault injection for tests: Sender.after_send

    async def start(self) -> None:
        s: NotificationsSettings = self.settings  # type: ignore[assignment]
        # The directory and the digest timer exist before the first event is consumed.
        pool = await create_pool(s.database_url.get_secret_value(), s.db_schema, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await migrations.migrate(conn, s.db_schema, [m for group in self._migration_sets for m in group])
            async with pool.acquire() as conn, conn.transaction():
                await store.seed_recipients(conn, self._seed)
                await digest.ensure_armed(conn, self.clock(), s.digest_time)
        finally:
            await pool.close()
        await super().start()
        self._http = httpx.AsyncClient(follow_redirects=False)
        self._channels = self._channels_factory(s, self._http)
        self.sender = Sender(self.pool, self.outbox, self._channels, s, clock=self.clock,
                             metrics=getattr(self, "metrics", None))
        self.sender.after_send = self.sender_hook
        self._sender_task = asyncio.create_task(self.sender.run(), name="sender")

    async def stop(self) -> None:
        s: NotificationsSettings = self.settings  # type: ignore[assignment]
        if self._sender_task is not None:
            # No new sends; those in flight finish and are marked, unsent rows are given back. Only a
            # send still in flight after the grace is cut short: it keeps its lease and is retried.
            if self.sender is not None:
                self.sender.stop()
                await asyncio.wait({self._sender_task}, timeout=s.delivery_stop_grace_seconds)
            await cancel_and_wait(self._sender_task)
            self._sender_task = None
        if self._channels is not None:
            with contextlib.suppress(Exception):
                await self._channels.close()
            self._channels = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await super().stop()


def default_channels(settings: NotificationsSettings, client: httpx.AsyncClient) -> Channels:
    return Channels(EmailChannel(settings), WebhookChannel(settings, client))


def build(settings: NotificationsSettings, *, clock: Clock = system_clock) -> tuple[Runtime, FastAPI]:
    rules = domain.parse_rules(_data(settings.routing_file, "routing.yaml"))
    seed = list(_data(settings.recipients_file, "recipients.yaml").get("recipients") or [])
    renderer = Renderer(make_environment(settings.template_dir, pages_base_url=settings.pages_base_url))
    inbound = [topics.INVITATIONS_EVENTS, topics.COMMITMENTS_EVENTS]
    runtime = NotificationsRuntime(
        settings, channels_factory=default_channels, seed=seed, migration_sets=migration_sets(),
        topics_out=[topics.NOTIFICATIONS_EVENTS], topics_in=inbound, clock=clock,
    )
    # Batch path: up to 100 records per transaction and per offset commit (docs/performance.md, B1).
    consumer = runtime.consumer(inbound, batch_size=100)
    # Each topic takes exactly the types documented for it: those it does not act on are
    # applied as no-ops, anything else (and malformed records) goes to the dead-letter topic.
    router = Router(rules, renderer, settings, metrics=getattr(runtime, "metrics", None))
    for model in HANDLED:
        consumer.handles(model)(router.handle)
    runtime.timer(digest.KIND)(digest.DigestBuilder(renderer, settings).fire)
    app = create_app("NTB Rakor: notifications", "Notifications to officials and staff, and their delivery log.")
    app.state.runtime = runtime
    app.include_router(http.router(domain.mandatory_types(rules)))
    app.include_router(http_resend.router())
    return runtime, app
