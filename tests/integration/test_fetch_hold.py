"""A record behind another on its partition does not wait out a long-held fetch (real broker).

aiokafka leaves a partition whose fetched records are still buffered out of the fetch it sends
meanwhile; the broker holds that fetch up to fetch_max_wait_ms unless a record lands on a
partition it covers. Without shared.platform.kafka_fetch the second record below waits for
the whole 10 s hold (measured: 9.9-10.0 s); with it, for the short one.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.platform.kafka_fetch import hold_briefly_while_buffered
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP

pytestmark = pytest.mark.integration

LONG_HOLD_MS = 10_000


async def _take(consumer: AIOKafkaConsumer, value: bytes, timeout: float) -> float:
    """Seconds until `value` is handed to the application."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        polled = await consumer.getmany(timeout_ms=500)
        if any(r.value == value for batch in polled.values() for r in batch):
            return time.monotonic() - t0
    raise AssertionError(f"{value!r} not consumed within {timeout} s")


async def test_a_follow_up_record_on_a_buffered_partition_is_not_held_behind_the_long_fetch(topic_prefix):
    topic = topic_prefix + "fetch-hold"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **client_options())
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=LONG_HOLD_MS, **client_options())
    await producer.start()
    await consumer.start()
    hold_briefly_while_buffered(consumer, busy_wait_ms=50)
    hot, other = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        consumer.assign([hot, other])
        await consumer.seek_to_beginning(hot, other)
        await asyncio.sleep(1.0)  # a long-held fetch over both partitions is now in flight
        await producer.send_and_wait(topic, b"first", partition=0)
        # The fetch answers with "first", which waits in the buffer while the application is
        # busy: after aiokafka's prefetch backoff (100 ms) it sends a fetch for the other partition only.
        await asyncio.sleep(0.6)
        await _take(consumer, b"first", timeout=LONG_HOLD_MS / 1000 * 2)
        await producer.send_and_wait(topic, b"second", partition=0)
        waited = await _take(consumer, b"second", timeout=LONG_HOLD_MS / 1000 * 2)
        # Held behind the fetch for the other partition it would wait ~10 s.
        assert waited < LONG_HOLD_MS / 1000 / 3, f"the follow-up record waited {waited:.2f} s"
    finally:
        await consumer.stop()
        await producer.stop()
