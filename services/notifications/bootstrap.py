"""Composition root: wires settings, runtime, consumers and HTTP routes."""

from __future__ import annotations

from fastapi import FastAPI

from shared import migrations
from shared.http import create_app
from shared.contracts import topics
from shared.contracts.invitations import MeetingScheduled
from shared.runtime import Runtime

from . import journal
from .settings import NotificationsSettings


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.load("messaging", "shared", "sql"), migrations.load("notifications", "services.notifications")]


def build(settings: NotificationsSettings) -> tuple[Runtime, FastAPI]:
    inbound = [topics.INVITATIONS_EVENTS]
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.NOTIFICATIONS_EVENTS],
                      topics_in=inbound)
    consumer = runtime.consumer(inbound)
    consumer.handles(MeetingScheduled)(journal.record)
    app = create_app("NTB Rakor: notifications", "Notifications to officials and staff, and their delivery log.")
    app.state.runtime = runtime
    return runtime, app
