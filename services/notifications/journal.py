"""Recording consumed events (the first thing this service does with each of them)."""

from __future__ import annotations

import json

from shared.consumer import HandlerContext
from shared.contracts.registry import EventPayload


async def record(payload: EventPayload, ctx: HandlerContext) -> None:
    event = ctx.event
    await ctx.conn.execute(
        "INSERT INTO event_journal (event_id, event_type, source, subject, correlation_id, payload) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        event.id, event.type, event.source, event.subject, event.correlation_id,
        json.loads(payload.model_dump_json()),
    )
