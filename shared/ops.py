"""`ntbctl`: the operators' command line.

    ntbctl dlq list [--topic TOPIC.dlq] [--limit N]     dead letters, one line each, with their reasons
    ntbctl dlq show TOPIC.dlq PARTITION OFFSET          one dead letter: every header as sent, key and value
    ntbctl dlq replay TOPIC.dlq PARTITION OFFSET        send it back to its original topic, unchanged
    ntbctl consumer skip SCHEMA GROUP TOPIC PARTITION OFFSET --reason WHY
                                                        move a stuck consumer past one record: it is
                                                        dead-lettered with WHY (audited in consumer_skips)
    ntbctl lag                                          outbox lag and rows set aside, consumer lag per group
    ntbctl outbox list [--schema SCHEMA]                outbox rows Kafka refused, set aside, with the reason
    ntbctl outbox requeue SCHEMA ID                     put a set-aside row back for the relay (once its cause is fixed)
    ntbctl audit COMMITMENT_ID                          a commitment's audit trail (commitments API)
    ntbctl logs CORRELATION_ID [--follow]               every log line of one flow, across services

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

from . import kafka_records
from .contracts.topics import DLQ_SUFFIX
from .dead_letter import stored_body
from .kafka import SafeProducer

SERVICES = ("invitations", "commitments", "notifications")


def _bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def _dsn() -> str:
    return os.environ.get("DATABASE_URL", "postgresql://ntb:ntb@127.0.0.1:15432/ntb")


async def _dlq_topics(admin: AIOKafkaAdminClient) -> list[str]:
    return sorted(t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX))


async def _partitions(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"])


async def _read_all(topic: str, limit: int) -> list[Any]:
    kafka_records.install()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None)
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
    kafka_records.install()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None)
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
    """First value of each header, for reading our own dlq_* headers (NULL reads as empty)."""
    found: dict[str, str] = {}
    for k, v in record.headers or ():
        found.setdefault(k, (v or b"").decode("utf-8", "replace"))
    return found


def _shown(raw: bytes | None) -> Any:
    """A header value or key for `dlq show`: NULL is null, text is text, other bytes are hex."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": raw.hex()}
    return text if text.isprintable() else {"text": text, "hex": raw.hex()}


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() and c != "\t" else " " for c in text)


async def dlq_list(topic: str | None, limit: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap())
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
            fields = [name, str(record.partition), str(record.offset), h.get("dlq_failed_at", "-"),
                      h.get("dlq_consumer", "-"), h.get("ce_type", "-"), h.get("dlq_reason", "-")]
            print("\t".join(_one_line(f)[:2000] for f in fields))
    print(f"{total} dead letter(s)", file=sys.stderr)
    return 0


async def dlq_show(topic: str, partition: int, offset: int) -> int:
    """Every header in the order sent, duplicates kept; NULL prints as null, empty as "".

    A dead letter whose body was kept in PostgreSQL (`dlq_body_ref`) shows the original
    record from there (needs DATABASE_URL)."""
    record = await _one(topic, partition, offset)
    headers = [[kafka_records.header_name_bytes(k).decode("utf-8", "backslashreplace"), _shown(v)]
               for k, v in record.headers or ()]
    shown: dict[str, Any] = {"key": _shown(record.key), "headers": headers}
    value = record.value
    ref = _headers(record).get("dlq_body_ref")
    if ref:
        original = await _stored(ref)
        if original is None:
            shown["original"] = f"kept in PostgreSQL as {ref}, not readable here (set DATABASE_URL)"
        else:
            key, value, original_headers = original
            shown["original"] = {"key": _shown(key), "headers": [
                [name.decode("utf-8", "backslashreplace"), _shown(v)] for name, v in original_headers]}
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    try:
        print((value or b"").decode("utf-8"))
    except UnicodeDecodeError:
        print((value or b"").hex())
    return 0


async def _stored(ref: str) -> tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]] | None:
    if "DATABASE_URL" not in os.environ:
        return None
    schema, _, body_id = ref.partition(".dead_letter_bodies:")
    conn = await asyncpg.connect(_dsn())
    try:
        row = await conn.fetchrow(f'SELECT * FROM "{schema}".dead_letter_bodies WHERE id = $1', int(body_id))
    finally:
        await conn.close()
    return None if row is None else stored_body(row)


async def consumer_skip(schema: str, group: str, topic: str, partition: int, offset: int, reason: str,
                        by: str) -> int:
    """Ask the running consumer `group` to dead-letter the record at topic[partition]@offset and move on.

    Nothing is dropped: the consumer (any replica owning the partition) sends the record to
    `<topic>.dlq` with the reason "moved past by an operator (BY): REASON" and marks the
    request done; the row in `consumer_skips` is the audit trail."""
    if not reason.strip():
        print("a reason is required (--reason)", file=sys.stderr)
        return 2
    if "DATABASE_URL" not in os.environ:
        print("DATABASE_URL is not set: the request is written to the service's database", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(_dsn(), server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('consumer_skips')"):
            print(f"no consumer_skips table in schema {schema}", file=sys.stderr)
            return 1
        await conn.execute(
            "INSERT INTO consumer_skips (consumer, topic, kafka_partition, kafka_offset, reason, requested_by) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", group, topic, partition, offset, reason, by)
    finally:
        await conn.close()
    print(f"requested: {group} dead-letters {topic}[{partition}]@{offset} and moves past it "
          f"(watch `ntbctl dlq list --topic {topic}{DLQ_SUFFIX}`)")
    return 0


async def dlq_replay(topic: str, partition: int, offset: int) -> int:
    """Replay is safe to repeat: the event keeps its ce_id, so consumers' inboxes dedupe it."""
    record = await _one(topic, partition, offset)
    h = _headers(record)
    if h.get("dlq_body_ref"):
        # The record itself is not on the topic (too big to copy, or header names that are not
        # UTF-8): replaying this dead letter would send an empty record.
        print(f"{topic}[{partition}]@{offset} keeps its body in PostgreSQL ({h['dlq_body_ref']}); "
              "see it with `ntbctl dlq show` and have the sender correct and resend it", file=sys.stderr)
        return 1
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
    """Outbox lag needs DATABASE_URL, consumer lag KAFKA_BOOTSTRAP_SERVERS; says which is missing."""
    status = 0
    if "DATABASE_URL" not in os.environ:
        print("outbox lag: DATABASE_URL is not set (e.g. postgresql://USER:PASSWORD@HOST:5432/ntb); skipped",
              file=sys.stderr)
        status = 2
    else:
        try:
            await _outbox_lag()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            print(f"outbox lag: cannot read PostgreSQL at DATABASE_URL: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        print(f"consumer lag: KAFKA_BOOTSTRAP_SERVERS is not set; trying {_bootstrap()}", file=sys.stderr)
    try:
        await _consumer_lag()
    except Exception as exc:  # noqa: BLE001 - an operator's tool reports, it does not trace back
        print(f"consumer lag: cannot read Kafka at {_bootstrap()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = status or 1
    return status


async def _outbox_lag() -> None:
    conn = await asyncpg.connect(_dsn(), timeout=10)
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


async def _consumer_lag() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap())
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None)
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
    cons = sub.add_parser("consumer", help="consumer groups").add_subparsers(dest="action", required=True)
    skip = cons.add_parser("skip", help="dead-letter one record a consumer is stuck on and move past it")
    skip.add_argument("schema", help="the service's database schema (e.g. commitments)")
    skip.add_argument("group", help="the consumer group (see `ntbctl lag`)")
    skip.add_argument("topic")
    skip.add_argument("partition", type=int)
    skip.add_argument("offset", type=int)
    skip.add_argument("--reason", required=True, help="why; goes into the dead letter and the audit row")
    skip.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asks (default: $USER)")
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
    args = parser.parse_args(argv)
    if args.command == "dlq":
        if args.action == "list":
            return asyncio.run(dlq_list(args.topic, args.limit))
        if args.action == "show":
            return asyncio.run(dlq_show(args.topic, args.partition, args.offset))
        return asyncio.run(dlq_replay(args.topic, args.partition, args.offset))
    if args.command == "consumer":
        return asyncio.run(consumer_skip(args.schema, args.group, args.topic, args.partition, args.offset,
                                         args.reason, args.by))
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
