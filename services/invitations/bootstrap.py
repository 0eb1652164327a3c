"""Composition root: wires settings, runtime, consumers and HTTP routes."""

from __future__ import annotations

from fastapi import FastAPI

from shared import migrations
from shared.http import create_app
from shared.contracts import topics
from shared.runtime import Runtime

from . import http
from .settings import InvitationsSettings


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.load("messaging", "shared", "sql"), migrations.load("invitations", "services.invitations")]


def build(settings: InvitationsSettings) -> tuple[Runtime, FastAPI]:
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.INVITATIONS_EVENTS])
    app = create_app("NTB Rakor: invitations", "The Rakor: meetings, invitations, RSVP, reminders and attendance.")
    app.state.runtime = runtime
    app.include_router(http.router())
    return runtime, app
