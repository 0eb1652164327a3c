"""Outbox.write_many on real PostgreSQL: a consumed batch's rows in one statement, in order, one wake-up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.contracts import registry
from shared.contracts.notifications import Channel, DeliveryFailed
from shared.platform import migrations
from shared.platform.db import create_pool
from shared.platform.outbox import Outbox, channel, row, unpack_headers

from .conftest import DSN

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


@pytest.fixture
async def pool(schema_for):
    pool = await create_pool(DSN, schema_for("outbox"), max_size=2)
    async with pool.acquire() as conn:
        await migrations.migrate(conn, schema_for("outbox"), migrations.messaging())
    yield pool
    await pool.close()


def failed(n: int) -> DeliveryFailed:
    return DeliveryFailed(delivery_id=f"00000000-0000-4000-8000-{n:012d}", recipient_id=f"r-{n % 2}",
                          channel=Channel.EMAIL, source_event_id=f"e-{n}", source_event_type="t", attempts=0,
                          at="2026-03-02T01:00:00Z", reason="test \u00e9 \"quoted\" \\ back")


async def test_rows_are_written_in_order_with_their_headers_and_wake_the_relay_once(pool, schema_for):
    outbox = Outbox(registry, source="/ntb/test")
    built = [outbox.build(failed(n), correlation_id=f"corr-{n}", causation_id=f"e-{n}") for n in range(5)]
    woken: list[str] = []
    listener = await asyncpg.connect(DSN)
    try:
        await listener.add_listener(channel(schema_for("outbox")), lambda *args: woken.append(args[2]))
        async with pool.acquire() as conn, conn.transaction():
            await outbox.write_many(conn, [row(e, topic=t, key=k) for e, t, k in built])
            await outbox.write_many(conn, [])  # nothing to write: no statement, no wake-up
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a second notification, if one were sent, arrives meanwhile
    finally:
        await listener.close()
    assert woken == [channel(schema_for("outbox"))]
    rows = await pool.fetch("SELECT event_id, topic, key, headers, payload, header_pack FROM outbox ORDER BY id")
    assert [r["event_id"] for r in rows] == [e.id for e, _, _ in built]
    assert [(r["topic"], r["key"]) for r in rows] == [(t, k) for _, t, k in built]
    assert [r["headers"] for r in rows] == [[[k, v.decode()] for k, v in e.to_headers()] for e, _, _ in built]
    assert [unpack_headers(r["header_pack"]) for r in rows] == [e.to_headers() for e, _, _ in built]  # the relay's copy
    assert [bytes(r["payload"]) for r in rows] == [e.data for e, _, _ in built]
