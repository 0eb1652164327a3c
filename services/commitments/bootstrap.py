"""Composition root: wires settings, runtime, consumers, timers and HTTP routes."""

from __future__ import annotations

from collections.abc import Coroutine
from functools import partial
from typing import Any

from fastapi import FastAPI

from shared.contracts import topics
from shared.contracts.commitments import RealizationReported, SubmitCommitment
from shared.contracts.invitations import MeetingConcluded
from shared.platform import migrations, web
from shared.platform.http import create_app
from shared.platform.runtime import Runtime
from shared.platform.timers import Clock, system_clock

from . import handlers, http, http_pages, http_region_pages, http_review_pages
from .operations import OVERDUE, REMINDER
from .settings import CommitmentsSettings
from .sign_in_mail import SignInMailer
from .store import Store


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.messaging(), migrations.load("commitments", "services.commitments")]


def build(settings: CommitmentsSettings, *, clock: Clock = system_clock) -> tuple[Runtime, FastAPI]:
    inbound = [topics.INVITATIONS_EVENTS, topics.COMMITMENTS_INBOUND, *topics.REGIONAL_INBOUND,
               topics.REALIZATION_INBOUND]
    staff = http_pages.staff_directory(settings.staff_file)
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.COMMITMENTS_EVENTS],
                      topics_in=inbound, clock=clock, store=Store)
    terms = settings.terms()
    # Batch path: up to 100 records per transaction and per offset commit (docs/performance.md, B1);
    # a rejected record is isolated by a savepoint replay, so it alone is dead-lettered.
    consumer = runtime.consumer(inbound, batch_size=100)
    consumer.handles(MeetingConcluded)(partial(handlers.meeting_concluded, terms=terms))
    consumer.handles(SubmitCommitment)(partial(handlers.submit_commitment, terms=terms))
    consumer.handles(RealizationReported)(partial(handlers.realization_reported, terms=terms))
    runtime.timer(REMINDER)(handlers.deadline_reminder)
    runtime.timer(OVERDUE)(handlers.deadline_overdue)
    app = create_app("NTB Rakor: commitments",
                     "FY2026 budget commitments of the ten regencies/cities: requests, submissions, review, "
                     "deadlines, realization and the provincial summary.")
    app.state.runtime = runtime
    app.state.terms = terms
    app.state.sign_in_mailer = None

    def mail_sign_in_links(rt: Runtime) -> Coroutine[Any, Any, None]:
        # Cancelled at stop: a mail cut short keeps its lease and is sent again after it runs out.
        app.state.sign_in_mailer = SignInMailer(rt.pool, settings, staff, rt.clock)
        return app.state.sign_in_mailer.run()

    runtime.background("sign-in-mailer", mail_sign_in_links)
    app.state.staff = staff
    app.include_router(http.api)
    app.include_router(http_pages.pages)
    app.include_router(http_review_pages.pages)
    app.include_router(http_region_pages.pages)
    app.add_exception_handler(http_pages.PageAnswer, http_pages.answer)
    web.serve_page_errors(app, ["masuk", "keluar", "dasbor", "komitmen", "tinjauan"])
    return runtime, app
