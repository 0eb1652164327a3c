"""Dead letters: the original record plus why it could not be processed; always deliverable.

The record goes to `<topic>.dlq` with its original key, value and headers, in the order
and with the duplicates they were sent with; `dlq_*` headers add the reason and where it
came from, so an operator can inspect it and replay it to the original topic unchanged.

A dead letter must always fit under the broker's record limit, or the consumer could
never move past the record. When the copy plus the reason would not fit (a record near
the limit), or cannot be re-sent byte for byte (a header name that is not UTF-8), the
exact record is kept in PostgreSQL (`dead_letter_bodies`, in the consumer's schema) and
the dead letter carries the reason, the source position, the original size and
`dlq_body_ref` = `<schema>.dead_letter_bodies:<id>`; `ntbctl dlq show` prints either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from shared.contracts.topics import dlq
from shared.platform.kafka import SafeProducer
from shared.platform.kafka_records import header_name_bytes
from shared.platform.logging import get_logger

log = get_logger(__name__)

REASON_MAX = 2000
# The broker takes records up to message.max.bytes (1,048,588 by default) including the
# batch framing; a copy is only sent when its key, value and headers stay well below.
COPY_MAX_BYTES = 1_000_000
KEY_MAX_BYTES = 1024  # the key of a dead letter whose body is kept in PostgreSQL


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def dead_letter_headers(record: KafkaRecord, *, reason: str, consumer: str) -> list[tuple[str, bytes | None]]:
    kept = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
    return kept + _dlq_headers(record, reason=reason, consumer=consumer)


def _dlq_headers(record: KafkaRecord, *, reason: str, consumer: str, **more: str) -> list[tuple[str, bytes | None]]:
    extra = {
        "dlq_reason": reason[:REASON_MAX],
        "dlq_consumer": consumer,
        "dlq_original_topic": record.topic,
        "dlq_original_partition": str(record.partition),
        "dlq_original_offset": str(record.offset),
        "dlq_failed_at": datetime.now(UTC).isoformat(),
        **more,
    }
    return [(k, v.encode("utf-8", "backslashreplace")) for k, v in extra.items()]


def record_size(record: KafkaRecord) -> int:
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(header_name_bytes(k)) + len(v or b"") + 8 for k, v in record.headers))


def _resendable(record: KafkaRecord) -> bool:
    try:
        for key, _ in record.headers:
            key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def headers_as_json(headers: tuple[tuple[str, bytes | None], ...]) -> str:
    return json.dumps([[header_name_bytes(k).hex(), None if v is None else v.hex()] for k, v in headers])


class DeadLetterPublisher:
    def __init__(self, producer: SafeProducer, pool: asyncpg.Pool | None = None) -> None:
        self._producer = producer
        self.pool = pool  # set by the runtime once it has one; without it big bodies are not kept
        self._schema: str | None = None

    async def publish(self, record: KafkaRecord, *, reason: str, consumer: str) -> str:
        """Send and wait for the broker's ack: only then may the original offset be committed."""
        topic = dlq(record.topic)
        if _resendable(record) and record_size(record) + len(reason) + 1024 <= COPY_MAX_BYTES:
            try:
                await self._producer.send(
                    topic,
                    value=record.value if record.value is not None else b"",
                    key=record.key,
                    headers=dead_letter_headers(record, reason=reason, consumer=consumer),  # type: ignore[arg-type]
                )
                return topic
            except (MessageSizeTooLargeError, RecordTooLargeError):
                log.warning("dead-letter copy refused as too large; keeping the body in PostgreSQL")
        await self._publish_reference(topic, record, reason=reason, consumer=consumer)
        return topic

    async def _publish_reference(self, topic: str, record: KafkaRecord, *, reason: str, consumer: str) -> None:
        more = {"dlq_original_bytes": str(record_size(record)),
                "dlq_original_headers": str(len(record.headers))}
        if self.pool is not None:
            ref = await self._keep(record, reason=reason, consumer=consumer)
            more["dlq_body_ref"] = ref
        else:
            reason = f"{reason} (the record was not kept: too large to copy and no database)"
        key = record.key if record.key is not None and len(record.key) <= KEY_MAX_BYTES else None
        await self._producer.send(topic, value=b"", key=key,
                                  headers=_dlq_headers(record, reason=reason, consumer=consumer, **more))  # type: ignore[arg-type]

    async def _keep(self, record: KafkaRecord, *, reason: str, consumer: str) -> str:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            if self._schema is None:
                self._schema = await conn.fetchval("SELECT current_schema()")
            body_id = await conn.fetchval(
                """INSERT INTO dead_letter_bodies (consumer, topic, kafka_partition, kafka_offset, record_key,
                                                   record_value, record_headers, reason)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
                   ON CONFLICT (consumer, topic, kafka_partition, kafka_offset)
                   DO UPDATE SET reason = EXCLUDED.reason RETURNING id""",
                consumer, record.topic, record.partition, record.offset, record.key, record.value,
                headers_as_json(record.headers), reason[:REASON_MAX])
        return f"{self._schema}.dead_letter_bodies:{body_id}"


def stored_body(row: Any) -> tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]:
    """(key, value, headers) of a `dead_letter_bodies` row, exactly as the record was sent."""
    headers = row["record_headers"]
    if isinstance(headers, str):
        headers = json.loads(headers)
    return (row["record_key"], row["record_value"],
            [(bytes.fromhex(k), None if v is None else bytes.fromhex(v)) for k, v in headers])
