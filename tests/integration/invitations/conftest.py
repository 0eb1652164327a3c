"""Helpers for the invitations service on the real stack: a clock the test moves, started runtimes."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.invitations.bootstrap import build
from services.invitations.settings import InvitationsSettings
from shared.contracts.roles import Role
from shared.contracts.topics import INVITATIONS_EVENTS

from ..conftest import http_client, issue_key, published_events, service_settings


class MovableClock:
    """A clock shared by a test and its runtimes: timers fire when the test moves it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def start_service(topic_prefix, schema_for, clock) -> AsyncIterator[Callable[..., Any]]:
    """Start an invitations runtime on the test's schema (call twice for two replicas)."""
    started: list[Any] = []

    async def start(**overrides: Any) -> tuple[Any, Any]:
        settings = service_settings(InvitationsSettings, topic_prefix, schema_for("inv"),
                                    timer_poll_seconds=0.05, **overrides)
        runtime, app = build(settings, clock=clock)
        await runtime.start()
        started.append(runtime)
        return runtime, app

    yield start
    for runtime in started:
        if runtime._pool is not None:  # noqa: SLF001 - a test may already have stopped it
            await runtime.stop()


def meeting_body(starts_at: datetime, **overrides: Any) -> dict[str, Any]:
    return {
        "title": "Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan",
        "agenda": "Komitmen anggaran 2026 untuk pekerja rentan",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=3)).isoformat(),
        "venue": "Pendopo Wakil Gubernur NTB, Mataram",
        "organizer": "Wakil Gubernur NTB",
    } | overrides


async def organizer_client(runtime: Any, app: Any) -> tuple[Any, dict[str, str]]:
    token = await issue_key(runtime, Role.ORGANIZER)
    return http_client(app, runtime), {"Authorization": f"Bearer {token}"}


async def scheduled_and_invited(client: Any, auth: dict[str, str], starts_at: datetime) -> str:
    """Import the directory, schedule a meeting, issue its 30 invitations; returns the meeting id."""
    assert (await client.post("/directory/import", headers=auth)).status_code == 200
    response = await client.post("/meetings", json=meeting_body(starts_at), headers=auth)
    assert response.status_code == 201, response.text
    meeting_id = response.json()["meeting_id"]
    issued = await client.post(f"/meetings/{meeting_id}/invitations", headers=auth)
    assert issued.status_code == 200, issued.text
    return meeting_id


@pytest.fixture
def published(db, schema_for, topic_prefix) -> Callable[..., Any]:
    """`await published(event_type=None)`: the events invitations has put on Kafka, oldest first."""
    return functools.partial(published_events, db, schema_for("inv"), topic_prefix + INVITATIONS_EVENTS)


ISSUED = "ntb.invitations.invitation.issued.v1"
RESPONDED = "ntb.invitations.invitation.responded.v1"
REMINDER = "ntb.invitations.reminder.due.v1"
CONCLUDED = "ntb.invitations.meeting.concluded.v1"


def token_of(rsvp_url: str) -> str:
    return rsvp_url.rsplit("/", 1)[-1]


async def tokens_by_seat(db: Any, schema: str, topic_prefix: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(region, role) -> (invitation id, RSVP token) from the issued events on Kafka."""
    issued = [e["payload"] for e in await published_events(db, schema, topic_prefix + INVITATIONS_EVENTS, ISSUED)]
    return {(e["region_code"], e["role"]): (e["invitation_id"], token_of(e["rsvp_url"]))
            for e in issued if e["delegated_from"] is None}
