"""`ntbctl outbox ...` and `ntbctl lag`: what waits to be published (each service's outbox, rows
set aside) and what waits to be consumed (each consumer group's lag per partition)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.ntbctl import services
from shared.ntbctl.output import OUT, address, bootstrap_servers, database_url, or_dash
from shared.platform.kafka_security import client_options
from shared.platform.outbox import REQUEUE


async def outbox_list(schemas: tuple[str, ...] = services.SCHEMAS) -> int:
    """Rows the relay set aside (outbox_dead), oldest first, with the reason Kafka gave."""
    conn = await asyncpg.connect(database_url())
    try:
        for schema in schemas:
            if not await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".outbox_dead'):
                continue
            for row in await conn.fetch(
                    f'SELECT id, event_id, topic, key, dead_at, reason FROM "{schema}".outbox_dead ORDER BY id'):
                OUT.row({"schema": schema, "id": row["id"], "dead_at": row["dead_at"].isoformat(), "topic": row["topic"],
                         "key": row["key"], "event_id": row["event_id"], "reason": row["reason"]}, _set_aside_line)
    finally:
        await conn.close()
    return 0


def _set_aside_line(r: dict[str, Any]) -> str:
    return (f"{r['schema']}\t{r['id']}\t{r['dead_at']}\t{r['topic']}\tkey={r['key']}\t"
            f"event_id={r['event_id']}\t{r['reason']}")


async def outbox_requeue(schema: str, row_id: int) -> int:
    conn = await asyncpg.connect(database_url(), server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('outbox_dead')"):
            print(f"no outbox_dead table in schema {schema}", file=sys.stderr)
            return 1
        row = await conn.fetchrow(REQUEUE, row_id)
    finally:
        await conn.close()
    if row is None:
        print(f"no set-aside row {row_id} in {schema} (already requeued?)", file=sys.stderr)
        return 1
    OUT.item({"schema": schema, "requeued": row_id, "outbox_id": row["id"]},
             lambda r: f"requeued {r['schema']} outbox_dead {r['requeued']} as outbox {r['outbox_id']}")
    return 0


async def lag() -> int:
    """Outbox lag needs PostgreSQL, consumer lag Kafka; says which address is missing instead of failing."""
    status = 0
    if address("database_url") is None:
        print("outbox lag: no PostgreSQL address (--database-url or DATABASE_URL, e.g. "
              "postgresql://USER:PASSWORD@HOST:5432/ntb); skipped", file=sys.stderr)
        status = 2
    else:
        try:
            async for row in _outbox_lag():
                OUT.row(row, _lag_line)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            print(f"outbox lag: cannot read PostgreSQL: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    if address("bootstrap_servers") is None:
        print("consumer lag: no Kafka address (--bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS); skipped",
              file=sys.stderr)
        return 2
    try:
        async for row in _consumer_lag():
            OUT.row(row, _lag_line)
    except Exception as exc:  # noqa: BLE001 - an operator's tool reports, it does not trace back
        print(f"consumer lag: cannot read Kafka at {','.join(bootstrap_servers())}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        status = status or 1
    return status


def _lag_line(row: dict[str, Any]) -> str:
    if row["kind"] == "outbox":
        return (f"outbox\t{row['schema']}\tunpublished={row['unpublished']}\toldest={or_dash(row['oldest'])}\t"
                f"set_aside={row['set_aside']}")
    return (f"consumer\t{row['group']}\t{row['topic']}[{row['partition']}]\tcommitted={row['committed']}\t"
            f"end={row['end']}\tlag={row['lag']}")


async def _outbox_lag() -> AsyncIterator[dict[str, Any]]:
    conn = await asyncpg.connect(database_url(), timeout=10)
    try:
        for schema in services.SCHEMAS:
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox")
            if not exists:
                continue
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, min(created_at) AS oldest FROM {schema}.outbox"
            )
            age = f"{(datetime.now(row['oldest'].tzinfo) - row['oldest']).total_seconds():.1f}s" if row["oldest"] else None
            dead = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox_dead") \
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox_dead") else 0
            yield {"kind": "outbox", "schema": schema, "unpublished": row["n"], "oldest": age, "set_aside": dead}
    finally:
        await conn.close()


async def _consumer_lag() -> AsyncIterator[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(), **client_options())
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(), group_id=None, **client_options())
    await consumer.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            ends = await consumer.end_offsets(list(offsets))
            for tp, meta in sorted(offsets.items(), key=lambda i: (i[0].topic, i[0].partition)):
                yield {"kind": "consumer", "group": group, "topic": tp.topic, "partition": tp.partition,
                       "committed": meta.offset, "end": ends[tp], "lag": max(0, ends[tp] - max(meta.offset, 0))}
    finally:
        await consumer.stop()
        await admin.close()
