"""`ntbctl dlq ...` and `ntbctl consumer skip`: dead letters read straight from Kafka, shown as
sent, replayed unchanged; a stuck consumer asked (through its database) to move past one record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.topics import DLQ_SUFFIX
from shared.ntbctl.output import CONFIG, OUT, address, bootstrap_servers, database_url, or_dash
from shared.platform import kafka_records
from shared.platform.dead_letter import stored_body
from shared.platform.kafka import SafeProducer
from shared.platform.kafka_security import client_options


async def _dlq_topics(admin: AIOKafkaAdminClient) -> list[str]:
    return sorted(t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX))


async def _partitions(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(), **client_options())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"])


def _reader() -> AIOKafkaConsumer:
    """A consumer in no group that reads records tolerantly (shared.platform.kafka_records)."""
    kafka_records.install()
    return AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(), enable_auto_commit=False, group_id=None,
                            **client_options())


async def _read_all(topic: str, limit: int) -> list[Any]:
    consumer = _reader()
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
    consumer = _reader()
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
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(), **client_options())
    await admin.start()
    try:
        topics = [topic] if topic else await _dlq_topics(admin)
    finally:
        await admin.close()
    total = 0
    for name in topics:
        for record in await _read_all(name, limit):
            total += 1
            OUT.row(_dead_letter(name, record), _dead_letter_line)
    print(f"{total} dead letter(s)", file=sys.stderr)
    return 0


def _dead_letter(topic: str, record: Any) -> dict[str, Any]:
    h = _headers(record)
    return {"topic": topic, "partition": record.partition, "offset": record.offset,
            "failed_at": h.get("dlq_failed_at"), "consumer": h.get("dlq_consumer"),
            "type": h.get("ce_type", "-"), "reason": h.get("dlq_reason", "-")}


def _dead_letter_line(row: dict[str, Any]) -> str:
    fields = [row["topic"], str(row["partition"]), str(row["offset"]), or_dash(row["failed_at"]),
              or_dash(row["consumer"]), row["type"], row["reason"]]
    return "\t".join(_one_line(f)[:2000] for f in fields)


async def dlq_show(topic: str, partition: int, offset: int) -> int:
    """Every header in the order sent, duplicates kept; NULL prints as null, empty as "".

    A dead letter whose body was kept in PostgreSQL (`dlq_body_ref`) shows the original
    record from there (needs DATABASE_URL)."""
    record = await _one(topic, partition, offset)
    headers = [[kafka_records.header_name_bytes(k).decode("utf-8", "backslashreplace"), _shown(v)]
               for k, v in record.headers or ()]
    shown: dict[str, Any] = {"key": _shown(record.key), "headers": headers}
    value: bytes | None = record.value
    ref = _headers(record).get("dlq_body_ref")
    if ref:
        original = await _stored(ref)
        if original is None:
            shown["original"] = f"kept in PostgreSQL as {ref}, not readable here (give --database-url or DATABASE_URL)"
        else:
            key, value, original_headers = original
            shown["original"] = {"key": _shown(key), "headers": [
                [name.decode("utf-8", "backslashreplace"), _shown(v)] for name, v in original_headers]}
    try:
        shown["value"] = (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        shown["value"] = (value or b"").hex()
    OUT.item(shown, _dead_letter_text)
    return 0


def _dead_letter_text(shown: dict[str, Any]) -> str:
    """The metadata as an indented JSON object, then the value on its own (a record's JSON stays readable)."""
    meta = {k: v for k, v in shown.items() if k != "value"}
    return f"{json.dumps(meta, indent=2, ensure_ascii=False)}\n{shown['value']}"


async def _stored(ref: str) -> tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]] | None:
    if address("database_url") is None:
        return None
    schema, _, body_id = ref.partition(".dead_letter_bodies:")
    conn = await asyncpg.connect(database_url())
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
    if address("database_url") is None:
        print("no PostgreSQL address (--database-url or DATABASE_URL): the request is written to the "
              "service's database", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(database_url(), server_settings={"search_path": schema})
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
    producer = SafeProducer(CONFIG.get("bootstrap_servers"), client_id="ntbctl")
    try:
        await producer.send(original, value=record.value or b"", key=record.key, headers=headers)
    finally:
        await producer.stop()
    print(f"replayed {topic}[{partition}]@{offset} to {original}")
    return 0
