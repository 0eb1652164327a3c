"""Composition root: wires settings, runtime, timers and HTTP routes."""

from __future__ import annotations

from fastapi import FastAPI

from shared.platform import migrations, web
from shared.contracts import topics
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.timers import Clock, Timer, TimerContext, system_clock

from . import commands, http, http_directory, http_pages, http_rsvp
from .settings import InvitationsSettings


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.load("messaging", "shared.platform", "sql"), migrations.load("invitations", "services.invitations")]


def build(settings: InvitationsSettings, *, clock: Clock = system_clock) -> tuple[Runtime, FastAPI]:
    # No inbound topic: the service is driven over HTTP and by its own durable timers.
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.INVITATIONS_EVENTS], clock=clock)
    deps = commands.Deps(runtime.outbox, settings)

    @runtime.timer(commands.REMINDER)
    async def remind(timer: Timer, ctx: TimerContext) -> None:
        await commands.fire_reminder(deps, timer, ctx)

    app = create_app("NTB Rakor: invitations", "The Rakor: meetings, invitee directory, invitations, RSVP with "
                     "delegation, durable reminders and attendance. Organizer routes need an organizer API key; "
                     "RSVP routes need only the signed token from the invitation's link.")
    app.state.runtime = runtime
    app.include_router(http.router())
    app.include_router(http_directory.router())
    app.include_router(http_rsvp.router())
    app.include_router(http_pages.router())
    web.serve_page_errors(app, ["undangan"])
    return runtime, app
