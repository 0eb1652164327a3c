"""Composition root: wires settings, runtime, consumers, timers and HTTP routes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from shared.platform import migrations, web
from shared.contracts import topics
from shared.contracts.commitments import RealizationReported, SubmitCommitment
from shared.contracts.invitations import MeetingConcluded
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.tasks import cancel_and_wait
from shared.platform.timers import Clock, system_clock

from . import http, http_pages, http_region_pages, http_review_pages
from .handlers import Handlers
from .operations import OVERDUE, REMINDER
from .settings import CommitmentsSettings
from .sign_in_mail import SignInMailer


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.messaging(), migrations.load("commitments", "services.commitments")]


class CommitmentsRuntime(Runtime):
    """The shared runtime plus the worker that mails sign-in links (sign_in_mail.py)."""

    def __init__(self, *args: Any, staff: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staff = staff
        self.sign_in_mailer: SignInMailer | None = None
        self._mailer_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self.sign_in_mailer = SignInMailer(self.pool, self.settings, self._staff, self.clock)
        self._mailer_task = asyncio.create_task(self.sign_in_mailer.run(), name="sign-in-mailer")

    async def stop(self) -> None:
        # A mail cut short keeps its lease and is sent again after it runs out.
        await cancel_and_wait(self._mailer_task)
        self._mailer_task = None
        await super().stop()


def build(settings: CommitmentsSettings, *, clock: Clock = system_clock) -> tuple[Runtime, FastAPI]:
    inbound = [topics.INVITATIONS_EVENTS, topics.COMMITMENTS_INBOUND, *topics.REGIONAL_INBOUND,
               topics.REALIZATION_INBOUND]
    staff = http_pages.staff_directory(settings.staff_file)
    runtime = CommitmentsRuntime(settings, migration_sets=migration_sets(), topics_out=[topics.COMMITMENTS_EVENTS],
                                 topics_in=inbound, clock=clock, staff=staff)
    handlers = Handlers(settings, clock)
    # Batch path: up to 100 records per transaction and per offset commit (docs/performance.md, B1);
    # a rejected record is isolated by a savepoint replay, so it alone is dead-lettered.
    consumer = runtime.consumer(inbound, batch_size=100)
    consumer.handles(MeetingConcluded)(handlers.meeting_concluded)
    consumer.handles(SubmitCommitment)(handlers.submit_commitment)
    consumer.handles(RealizationReported)(handlers.realization_reported)
    runtime.timer(REMINDER)(handlers.deadline_reminder)
    runtime.timer(OVERDUE)(handlers.deadline_overdue)
    app = create_app("NTB Rakor: commitments",
                     "FY2026 budget commitments of the ten regencies/cities: requests, submissions, review, "
                     "deadlines, realization and the provincial summary.")
    app.state.runtime = runtime
    app.include_router(http.router())
    app.state.staff = staff
    app.include_router(http_pages.router())
    app.include_router(http_review_pages.router())
    app.include_router(http_region_pages.router())
    web.serve_page_errors(app, ["masuk", "keluar", "dasbor", "komitmen", "tinjauan"])
    return runtime, app
