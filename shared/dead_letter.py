"""Dead letters: the original record, untouched, plus why it could not be processed.

The record goes to `<topic>.dlq` with its original key, value and headers; `dlq_*`
headers add the reason and where it came from, so an operator can inspect it and
replay it to the original topic unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .contracts.topics import dlq
from .kafka import SafeProducer

REASON_MAX = 2000


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def dead_letter_headers(record: KafkaRecord, *, reason: str, consumer: str) -> list[tuple[str, bytes]]:
    extra = {
        "dlq_reason": reason[:REASON_MAX],
        "dlq_consumer": consumer,
        "dlq_original_topic": record.topic,
        "dlq_original_partition": str(record.partition),
        "dlq_original_offset": str(record.offset),
        "dlq_failed_at": datetime.now(UTC).isoformat(),
    }
    kept = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
    return kept + [(k, v.encode()) for k, v in extra.items()]


class DeadLetterPublisher:
    def __init__(self, producer: SafeProducer) -> None:
        self._producer = producer

    async def publish(self, record: KafkaRecord, *, reason: str, consumer: str) -> str:
        """Send and wait for the broker's ack: only then may the original offset be committed."""
        topic = dlq(record.topic)
        await self._producer.send(
            topic,
            value=record.value if record.value is not None else b"",
            key=record.key,
            headers=dead_letter_headers(record, reason=reason, consumer=consumer),
        )
        return topic
