"""Kafka clients with the safe settings as the only settings.

- Producers are idempotent with acks=all: a retried send never duplicates or reorders
  within a partition, and a send is confirmed only once all in-sync replicas have it.
- Subscribers commit offsets only after the handler returned, i.e. after its database
  transaction committed (FastStream's Kafka default, ACK_FIRST, auto-commits before
  processing: at-most-once, never used here). An exception rewinds to the record
  (NACK_ON_ERROR) so it is never skipped. New consumer groups start from the earliest
  offset: `latest` would silently drop whatever was published before the group existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.platform.kafka_security import KafkaSecurity, bootstrap_list, from_env
from shared.platform.logging import get_logger

log = get_logger(__name__)

SAFE_PRODUCER: dict[str, Any] = {"enable_idempotence": True, "acks": "all"}
SAFE_SUBSCRIBER: dict[str, Any] = {
    "ack_policy": AckPolicy.NACK_ON_ERROR,
    "auto_offset_reset": "earliest",
}
# One record is at most 1 MiB; bigger inputs are rejected at the edges.
MAX_RECORD_BYTES = 1024 * 1024
# The producer's request limit: a record (with its headers) over it is refused before it is queued.
MAX_REQUEST_BYTES = MAX_RECORD_BYTES + 64 * 1024
# SafeProducer's batch size per partition (aiokafka's default is 16 KiB, librdkafka's 1 MB). At
# 16 KiB a 500-row relay chunk took 7+ produce requests in a row, each waiting for the one before
# (aiokafka keeps one request in flight per broker): bench B3, 33-39 -> 19-25 us of CPU per row
# and about 1.3x the rows/s. Well under the broker's message.max.bytes (1,048,588), which
# applies per batch; a single larger record still goes alone, as before.
PRODUCER_BATCH_BYTES = 256 * 1024
# Keys whose murmur2 hash SafeProducer remembers (pure Python in aiokafka; ~2 MB at most).
_HASHES_KEPT = 16384
# How long a stopping broker lets in-flight handlers finish (deploy/k8s grace periods exceed it).
GRACEFUL_TIMEOUT_SECONDS = 30.0


def make_broker(
    bootstrap_servers: str, client_id: str, *, security: KafkaSecurity | None = None, **extra: Any
) -> KafkaBroker:
    forbidden = {"ack_policy", "enable_idempotence", "acks"} & extra.keys()
    if forbidden:
        raise ValueError(f"the safe delivery settings cannot be overridden: {sorted(forbidden)}")
    return KafkaBroker(
        bootstrap_list(bootstrap_servers),
        client_id=client_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=GRACEFUL_TIMEOUT_SECONDS,
        # Our consumer logs one structured line per message; FastStream's own access
        # log would add unstructured duplicates.
        logger=None,
        security=(security or from_env()).faststream_security(),
        **SAFE_PRODUCER,
        **extra,
    )


def subscriber_options(group_id: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `broker.subscriber` that keep at-least-once delivery."""
    forbidden = {"ack_policy", "auto_commit", "enable_auto_commit"} & extra.keys()
    if forbidden:
        raise ValueError(f"the safe delivery settings cannot be overridden: {sorted(forbidden)}")
    return {"group_id": group_id, **SAFE_SUBSCRIBER, **extra}


class SafeProducer:
    """An idempotent acks=all producer that rebuilds itself after a failure.

    After a failed batch an idempotent producer's sequence state may be stale; starting
    a fresh one lets the service recover from a broker restart without restarting itself.
    """

    def __init__(
        self, bootstrap_servers: str, client_id: str, request_timeout_ms: int = 15000,
        *, security: KafkaSecurity | None = None,
    ) -> None:
        self._bootstrap = bootstrap_list(bootstrap_servers)
        self._security = security or from_env()
        self._client_id = client_id
        self._timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._hashes: dict[bytes, int] = {}

    async def _get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    request_timeout_ms=self._timeout_ms,
                    max_request_size=MAX_REQUEST_BYTES,
                    max_batch_size=PRODUCER_BATCH_BYTES,
                    # No linger: the relay appends a whole batch before the request goes out, so
                    # waiting adds only latency (5 ms per hop of every event, e.g. the Rakor burst).
                    linger_ms=0,
                    **SAFE_PRODUCER,
                    **self._security.aiokafka_options(),
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send_batch(self, records: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
        """Send (topic, key, value, headers) records and wait for every ack.

        Records of one partition go out in the order given (so each key's in order). They are
        packed here into aiokafka batches (`create_batch` / `send_batch`: one future per batch),
        each handed over as soon as it is full: aiokafka's `send()` costs ~35 us of Python per
        record (metadata look-up, partitioner, size estimate, a future and its callbacks), most
        of the relay's CPU (bench B3). A record over the size limit or with malformed headers
        raises before anything is queued."""
        producer = await self._get()
        try:
            futures = [future async for future in self._submit(producer, await self._route(producer, records))]
            await asyncio.gather(*futures)
        except BaseException:
            await self.reset()
            raise

    async def _route(self, producer: AIOKafkaProducer, records: Iterable[tuple[str, bytes | None, bytes, Any]],
                     ) -> list[tuple[str, int, bytes | None, bytes, Any]]:
        """Each record checked as `send()` checks it (size, header types) and given its partition."""
        partitions: dict[str, list[int]] = {}
        routed = []
        for topic, key, value, headers in records:
            headers = headers or []
            # Raises TypeError, ValueError or AttributeError for malformed headers, as send() does.
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > MAX_REQUEST_BYTES:
                raise MessageSizeTooLargeError(
                    f"The message is {size} bytes when serialized which is larger than the maximum request size "
                    f"you have configured with the max_request_size configuration")
            all_partitions = partitions.get(topic)
            if all_partitions is None:
                all_partitions = partitions[topic] = sorted(await producer.partitions_for(topic))
            routed.append((topic, self._partition(producer, topic, key, all_partitions), key, value, headers))
        return routed

    @staticmethod
    async def _submit(producer: AIOKafkaProducer, routed: list[tuple[str, int, bytes | None, bytes, Any]],
                      ) -> AsyncIterator[asyncio.Future[Any]]:
        """Batches per partition, each submitted once full (so the first request leaves while the rest is
        packed) and the last ones at the end; a partition's batches in order. Yields their futures."""
        open_batches: dict[tuple[str, int], BatchBuilder] = {}
        for topic, partition, key, value, headers in routed:
            batch = open_batches.get((topic, partition))
            if batch is not None and batch.append(timestamp=None, key=key, value=value, headers=headers) is not None:
                continue
            if batch is not None:  # full: off it goes (waiting, as send() does, while this partition has one queued)
                yield await producer.send_batch(batch, topic, partition=partition)
            batch = open_batches[topic, partition] = producer.create_batch()
            batch.append(timestamp=None, key=key, value=value, headers=headers)  # an empty batch takes any size
        for (topic, partition), batch in open_batches.items():
            batch.close()  # nothing else is appended to it (send() opens its own batches)
            yield await producer.send_batch(batch, topic, partition=partition)

    def _partition(self, producer: AIOKafkaProducer, topic: str, key: bytes | None, all_partitions: list[int]) -> int:
        """aiokafka's DefaultPartitioner (the Java client's): the same key always lands on the same partition."""
        if key is None:
            available: list[int] = list(producer.client.cluster.available_partitions_for_topic(topic) or ())
            return random.choice(available or all_partitions)  # spreading, not secrecy
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= _HASHES_KEPT:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        await self.send_batch([(topic, key, value, headers)])

    async def reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception:  # noqa: BLE001 - a broken producer may fail to stop; it is discarded anyway
                log.warning("discarded producer did not stop cleanly")

    async def stop(self) -> None:
        await self.reset()


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], *, partitions: int, replication: int,
    security: KafkaSecurity | None = None,
) -> None:
    """Create missing topics (and their dead-letter twins are passed in explicitly).

    For harnesses with throw-away topics; services provision through shared.platform.topic_plan."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_list(bootstrap_servers), request_timeout_ms=15000,
                                **(security or from_env()).aiokafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it first
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing]
                )
            log.info("topics created", topics=missing, partitions=partitions)
    finally:
        await admin.close()
