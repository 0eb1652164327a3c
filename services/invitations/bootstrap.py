"""Composition root: wires settings, runtime, timers and HTTP routes."""

from __future__ import annotations

from fastapi import FastAPI

from shared.contracts import topics
from shared.platform import migrations, web
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.timers import Clock, Timer, TimerContext, system_clock

from . import commands, http, http_directory, http_pages, http_rsvp
from .config import Config
from .settings import InvitationsSettings
from .store import REMINDER, Store


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.messaging(), migrations.load("invitations", "services.invitations")]


def build(settings: InvitationsSettings, *, clock: Clock = system_clock) -> tuple[Runtime, FastAPI]:
    # No inbound topic: the service is driven over HTTP and by its own durable timers.
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.INVITATIONS_EVENTS], clock=clock,
                      store=Store)
    config = Config.of(settings)

    @runtime.timer(REMINDER)
    async def remind(_: Timer, ctx: TimerContext) -> None:
        await commands.fire_reminder(ctx, config)

    app = create_app("NTB Rakor: invitations", "The Rakor: meetings, invitee directory, invitations, RSVP with "
                     "delegation, durable reminders and attendance. Organizer routes need an organizer API key; "
                     "RSVP routes need only the signed token from the invitation's link.")
    app.state.runtime = runtime
    app.state.invitations = config  # read by the routes (http_access.config)
    for module in (http, http_directory, http_rsvp, http_pages):
        app.include_router(module.router)
    web.serve_page_errors(app, ["undangan"])
    return runtime, app
