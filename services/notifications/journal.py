"""Recording consumed events (the first thing this service does with each of them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.contracts.registry import EventPayload
from shared.platform.envelope import CloudEvent

Entry = tuple[str, str, str, str | None, str | None, dict[str, Any]]


def entry(payload: EventPayload, event: CloudEvent) -> Entry:
    return event.id, event.type, event.source, event.subject, event.correlation_id, payload.model_dump(mode="json")


async def write(conn: asyncpg.Connection, entries: Sequence[Entry]) -> None:
    """The entries of one consumed batch (pipelined: one round trip)."""
    await conn.executemany(
        "INSERT INTO event_journal (event_id, event_type, source, subject, correlation_id, payload) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        entries,
    )
