"""Inbox: remember consumed event ids in the handler's own transaction.

Kafka redelivers after a crash or a rebalance; the primary key turns the second
delivery of an event into a no-op for that consumer. The consumer claims a batch's events
in one statement (a savepoint's replay claims them one by one, with the same statement).
"""

from __future__ import annotations

import asyncpg

from shared.platform.envelope import CloudEvent

# One statement claims a whole batch; RETURNING names the events seen for the first time.
CLAIM_MANY = (
    "INSERT INTO inbox (consumer, source, event_id, event_type, topic, kafka_partition, kafka_offset) "
    "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::bigint[]) "
    "ON CONFLICT DO NOTHING RETURNING source, event_id"
)


async def claim_many(
    conn: asyncpg.Connection, consumer: str, claims: list[tuple[CloudEvent, str, int, int]]
) -> set[tuple[str, str]]:
    """Claim (event, topic, partition, offset) items in one round trip; returns the fresh (source, id) pairs."""
    if not claims:
        return set()
    rows = await conn.fetch(
        CLAIM_MANY,
        consumer,
        [e.source for e, _, _, _ in claims],
        [e.id for e, _, _, _ in claims],
        [e.type for e, _, _, _ in claims],
        [t for _, t, _, _ in claims],
        [p for _, _, p, _ in claims],
        [o for _, _, _, o in claims],
    )
    return {(r["source"], r["event_id"]) for r in rows}
