"""`ntbctl`: the operators' command line.

    ntbctl dlq list [--topic TOPIC.dlq] [--limit N]     dead letters with their reasons
    ntbctl dlq show TOPIC.dlq PARTITION OFFSET          one dead letter, headers and value
    ntbctl dlq replay TOPIC.dlq PARTITION OFFSET        send it back to its original topic, unchanged
    ntbctl lag                                          outbox lag and rows set aside, consumer lag per group
    ntbctl outbox list [--schema SCHEMA]                outbox rows Kafka refused, set aside, with the reason
    ntbctl outbox requeue SCHEMA ID                     put a set-aside row back for the relay (once its cause is fixed)
    ntbctl audit COMMITMENT_ID                          a commitment's audit trail (commitments API)
    ntbctl logs CORRELATION_ID [--follow]               every log line of one flow, across services
    ntbctl topics apply [--replication 3] [--min-insync 2] [--partitions 3] [--dry-run]
                                                        create / raise every topic from shared.topic_plan

Kafka and PostgreSQL addresses come from KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL;
the commitments API from COMMITMENTS_URL with an operator key in NTB_API_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from .contracts.topics import DLQ_SUFFIX
from .kafka import SafeProducer
from .kafka_security import bootstrap_list, client_options

SERVICES = ("invitations", "commitments", "notifications")


def _bootstrap() -> list[str]:
    return bootstrap_list(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))


def _dsn() -> str:
    return os.environ.get("DATABASE_URL", "postgresql://ntb:ntb@127.0.0.1:15432/ntb")


async def _dlq_topics(admin: AIOKafkaAdminClient) -> list[str]:
    return sorted(t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX))


async def _partitions(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"])


async def _read_all(topic: str, limit: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None, **client_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        async def unread() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while len(records) < limit and await unread():
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit)
            for items in batch.values():
                records.extend(items)
        return records[:limit]
    finally:
        await _stop(consumer)


async def _one(topic: str, partition: int, offset: int) -> Any:
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None, **client_options())
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp, [])
        if not records or records[0].offset != offset:
            raise SystemExit(f"no record at {topic}[{partition}]@{offset}")
        return records[0]
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    # aiokafka 0.14 may surface the cancellation of its own internal task when a
    # manually assigned consumer stops; nothing is lost by ignoring it here.
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}


async def dlq_list(topic: str | None, limit: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    try:
        topics = [topic] if topic else await _dlq_topics(admin)
    finally:
        await admin.close()
    total = 0
    for name in topics:
        for record in await _read_all(name, limit):
            h = _headers(record)
            total += 1
            print(f"{name}\t{record.partition}\t{record.offset}\t{h.get('dlq_failed_at', '-')}\t"
                  f"{h.get('dlq_consumer', '-')}\t{h.get('ce_type', '-')}\t{h.get('dlq_reason', '-')}")
    print(f"{total} dead letter(s)", file=sys.stderr)
    return 0


async def dlq_show(topic: str, partition: int, offset: int) -> int:
    record = await _one(topic, partition, offset)
    print(json.dumps({"key": record.key.decode("utf-8", "replace") if record.key else None,
                      "headers": _headers(record)}, indent=2, ensure_ascii=False))
    try:
        print(record.value.decode("utf-8"))
    except (UnicodeDecodeError, AttributeError):
        print((record.value or b"").hex())
    return 0


async def dlq_replay(topic: str, partition: int, offset: int) -> int:
    """Replay is safe to repeat: the event keeps its ce_id, so consumers' inboxes dedupe it."""
    record = await _one(topic, partition, offset)
    h = _headers(record)
    original = h.get("dlq_original_topic") or topic.removesuffix(DLQ_SUFFIX)
    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    headers.append(("dlq_replayed_from", f"{topic}:{partition}:{offset}".encode()))
    producer = SafeProducer(_bootstrap(), client_id="ntbctl")
    try:
        await producer.send(original, value=record.value or b"", key=record.key, headers=headers)
    finally:
        await producer.stop()
    print(f"replayed {topic}[{partition}]@{offset} to {original}")
    return 0


async def outbox_list(schemas: tuple[str, ...] = SERVICES) -> int:
    """Rows the relay set aside (outbox_dead), oldest first, with the reason Kafka gave."""
    conn = await asyncpg.connect(_dsn())
    try:
        for schema in schemas:
            if not await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".outbox_dead'):
                continue
            for row in await conn.fetch(
                    f'SELECT id, event_id, topic, key, dead_at, reason FROM "{schema}".outbox_dead ORDER BY id'):
                print(f"{schema}\t{row['id']}\t{row['dead_at'].isoformat()}\t{row['topic']}\tkey={row['key']}\t"
                      f"event_id={row['event_id']}\t{row['reason']}")
    finally:
        await conn.close()
    return 0


# The row goes back as a new outbox row (published after what is already waiting) and the
# relay is woken as by any writer; one statement, so it is never in both tables or neither.
REQUEUE = (
    "WITH r AS (DELETE FROM outbox_dead WHERE id = $1 RETURNING event_id, topic, key, headers, payload), "
    "written AS (INSERT INTO outbox (event_id, topic, key, headers, payload) "
    "SELECT event_id, topic, key, headers, payload FROM r RETURNING id) "
    "SELECT id, pg_notify(current_schema() || '_outbox', '') FROM written"
)


async def outbox_requeue(schema: str, row_id: int) -> int:
    conn = await asyncpg.connect(_dsn(), server_settings={"search_path": schema})
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
    print(f"requeued {schema} outbox_dead {row_id} as outbox {row['id']}")
    return 0


async def lag() -> int:
    conn = await asyncpg.connect(_dsn())
    try:
        for schema in SERVICES:
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox")
            if not exists:
                continue
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, min(created_at) AS oldest FROM {schema}.outbox"
            )
            age = f"{(datetime.now(row['oldest'].tzinfo) - row['oldest']).total_seconds():.1f}s" if row["oldest"] else "-"
            dead = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox_dead") \
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox_dead") else 0
            print(f"outbox\t{schema}\tunpublished={row['n']}\toldest={age}\tset_aside={dead}")
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None, **client_options())
    await consumer.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            ends = await consumer.end_offsets(list(offsets))
            for tp, meta in sorted(offsets.items(), key=lambda i: (i[0].topic, i[0].partition)):
                print(f"consumer\t{group}\t{tp.topic}[{tp.partition}]\tcommitted={meta.offset}\t"
                      f"end={ends[tp]}\tlag={max(0, ends[tp] - max(meta.offset, 0))}")
    finally:
        await consumer.stop()
        await admin.close()
    return 0


async def audit(commitment_id: str, client: httpx.AsyncClient | None = None) -> int:
    """Print the trail as at, actor, role, action, from -> to, reason (one line per transition)."""
    base = os.environ.get("COMMITMENTS_URL", "http://127.0.0.1:8002")
    headers = {"Authorization": f"Bearer {os.environ['NTB_API_KEY']}"} if os.environ.get("NTB_API_KEY") else {}
    own = client is None
    http = client or httpx.AsyncClient(base_url=base, timeout=10)
    try:
        response = await http.get(f"/commitments/{commitment_id}/audit", headers=headers)
    finally:
        if own:
            await http.aclose()
    if response.status_code != 200:
        print(f"error: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    for entry in response.json():
        print("\t".join([
            str(entry.get("at", "")), str(entry.get("actor", "")), str(entry.get("role", "")),
            str(entry.get("action", "")), f"{entry.get('from_status') or '-'} -> {entry.get('to_status')}",
            str(entry.get("reason") or ""),
        ]))
    return 0


def logs(correlation_id: str, directory: Path, follow: bool) -> int:
    seen: dict[Path, int] = {}

    def scan() -> list[dict[str, Any]]:
        found = []
        for path in sorted(directory.glob("*.log")):
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                handle.seek(seen.get(path, 0))
                for raw in handle:
                    if correlation_id in raw:
                        try:
                            found.append(json.loads(raw))
                        except ValueError:
                            continue
                seen[path] = handle.tell()
        return sorted(found, key=lambda line: line.get("timestamp", ""))

    for line in scan():
        print(json.dumps(line, ensure_ascii=False))
    while follow:
        time.sleep(1)
        for line in scan():
            print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


def topics_command(sub: Any) -> None:
    """`ntbctl topics apply`: provision every topic of shared.topic_plan (self-contained)."""
    topics = sub.add_parser("topics", help="provision topics").add_subparsers(dest="action", required=True)
    apply = topics.add_parser("apply", help="create missing topics, raise min.insync.replicas")
    env = os.environ.get
    apply.add_argument("--prefix", default=env("TOPIC_PREFIX", ""))
    apply.add_argument("--partitions", type=int, default=int(env("TOPIC_PARTITIONS", "3")))
    apply.add_argument("--replication", type=int, default=int(env("TOPIC_REPLICATION", "1")),
                       help="replicas per partition (production: 3)")
    apply.add_argument("--min-insync", type=int, default=int(env("TOPIC_MIN_INSYNC_REPLICAS", "0")) or None,
                       help="min.insync.replicas (default: 2, or 1 when --replication is 1)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.set_defaults(run=_topics_apply)


def _topics_apply(args: argparse.Namespace) -> int:
    from . import topic_plan

    specs = topic_plan.plan(args.prefix, partitions=args.partitions, replication=args.replication,
                            min_insync=args.min_insync)
    if args.dry_run:
        for line in topic_plan.summary(specs):
            print(json.dumps(line))
        return 0
    report = asyncio.run(topic_plan.apply(_bootstrap(), specs))
    for line in report:
        print(line)
    return 1 if any("reassign" in line for line in report) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ntbctl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    listing = dlq.add_parser("list")
    listing.add_argument("--topic")
    listing.add_argument("--limit", type=int, default=1000)
    for action in ("show", "replay"):
        p = dlq.add_parser(action)
        p.add_argument("topic")
        p.add_argument("partition", type=int)
        p.add_argument("offset", type=int)
    sub.add_parser("lag", help="outbox and consumer lag")
    ob = sub.add_parser("outbox", help="outbox rows Kafka refused").add_subparsers(dest="action", required=True)
    ob.add_parser("list").add_argument("--schema", action="append", help="a service's schema (default: all three)")
    requeue = ob.add_parser("requeue")
    requeue.add_argument("schema")
    requeue.add_argument("row_id", type=int)
    a = sub.add_parser("audit", help="a commitment's audit trail")
    a.add_argument("commitment_id")
    lg = sub.add_parser("logs", help="log lines of one correlation id")
    lg.add_argument("correlation_id")
    lg.add_argument("--dir", type=Path,
                    default=Path(os.environ.get("LOCAL_STACK_DIR", Path.cwd() / ".local")) / "logs")
    lg.add_argument("--follow", action="store_true")
    topics_command(sub)
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is not None:
        return args.run(args)
    if args.command == "dlq":
        if args.action == "list":
            return asyncio.run(dlq_list(args.topic, args.limit))
        if args.action == "show":
            return asyncio.run(dlq_show(args.topic, args.partition, args.offset))
        return asyncio.run(dlq_replay(args.topic, args.partition, args.offset))
    if args.command == "lag":
        return asyncio.run(lag())
    if args.command == "outbox":
        if args.action == "list":
            return asyncio.run(outbox_list(tuple(args.schema) if args.schema else SERVICES))
        return asyncio.run(outbox_requeue(args.schema, args.row_id))
    if args.command == "audit":
        return asyncio.run(audit(args.commitment_id))
    return logs(args.correlation_id, args.dir, args.follow)


if __name__ == "__main__":
    sys.exit(main())
