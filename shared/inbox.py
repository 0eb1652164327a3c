"""Inbox: remember consumed event ids in the handler's own transaction.

Kafka redelivers after a crash or a rebalance; the primary key turns the second
delivery of an event into a no-op for that consumer.
"""

from __future__ import annotations

import asyncpg

from .envelope import CloudEvent


async def claim(
    conn: asyncpg.Connection, consumer: str, event: CloudEvent, *, topic: str, partition: int, offset: int
) -> bool:
    """True when this consumer sees the event for the first time (inside the caller's transaction)."""
    status = await conn.execute(
        "INSERT INTO inbox (consumer, source, event_id, event_type, topic, kafka_partition, kafka_offset) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        consumer,
        event.source,
        event.id,
        event.type,
        topic,
        partition,
        offset,
    )
    return status == "INSERT 0 1"
