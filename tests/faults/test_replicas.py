"""Two replicas in one consumer group, a rebalance mid-load, then one replica killed: every effect once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.topics import COMMITMENTS_EVENTS, REALIZATION_INBOUND
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP, ce_ids, read_all, report, wait_for
from .streams import Record, inbox_count, realization_applied, realization_reports, unique_tag
from .test_kill9 import _at_least

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
N = 600  # 60 reports for each of the ten regions
FIRST_WAVE = 30
JOIN_CAP = 300  # at most this many reports trickle in while replica 2 starts (12 s at 25/s)
BURST = 100  # sent just before the kill: 10 per region, so every partition gets some


def spread(records: list[Record]) -> list[Record]:
    """Round-robin over the regions (the keys), so every slice of the stream reaches every partition."""
    by_key: dict[bytes, list[Record]] = {}
    for record in records:
        by_key.setdefault(record[0], []).append(record)
    rounds = itertools.zip_longest(*by_key.values())
    return [r for r in itertools.chain.from_iterable(rounds) if r is not None]


class Stream:
    """The reports in order, sent as an outside system would (idempotent, acks=all): at once or paced.

    Pacing is what makes the faults land with records in flight however fast the consumers
    are: a batch consumer drains a burst of hundreds of records before a test can react, so
    the join and the kill happen while the stream is still being produced.
    """

    def __init__(self, topic: str, records: list[Record]) -> None:
        self.topic, self.records, self.sent = topic, records, 0
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                                         linger_ms=5, **client_options())

    async def __aenter__(self) -> Stream:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, count: int) -> None:
        chunk = self.records[self.sent:self.sent + count]
        futures = [await self.producer.send(self.topic, key=k, value=v, headers=h) for k, v, h in chunk]
        await asyncio.gather(*futures)
        self.sent += len(chunk)

    async def trickle(self, chunk: int, every: float, *, until: asyncio.Event, cap: int) -> None:
        """Send `chunk` records every `every` seconds until `until` is set or `cap` records are out."""
        while not until.is_set() and self.sent < cap:
            await self.send(min(chunk, cap - self.sent))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), every)


async def test_two_replicas_with_a_rebalance_and_a_kill_apply_each_report_once(
    topic_prefix, schema_for, db, processes
):
    """Replica 2 joins while reports flow (rebalance); replica 1 is SIGKILLed mid-stream: each report applied once."""
    schema, tag = schema_for("com"), unique_tag()
    first = processes("commitments", topic_prefix, schema)
    second = processes("commitments", topic_prefix, schema)
    await first.start()
    reports = spread(realization_reports(840, tag))[:N]  # only these N are sent; the count is by tag
    async with Stream(topic_prefix + REALIZATION_INBOUND, reports) as stream:
        await stream.send(FIRST_WAVE)
        at_join = await wait_for(lambda: _at_least(realization_applied(db, schema, tag), FIRST_WAVE // 2),
                                 interval=0.02)
        # Replica 2 starts while reports keep arriving: its join revokes and reassigns partitions mid-load.
        joined = asyncio.Event()
        trickle = asyncio.create_task(stream.trickle(5, 0.2, until=joined, cap=FIRST_WAVE + JOIN_CAP))
        try:
            await second.start()
            await wait_for(lambda: _has_processed(second), timeout=30)
            flowing_at_join, sent_at_join = not trickle.done(), stream.sent
        finally:
            joined.set()
            await trickle
        assert flowing_at_join, "the stream stopped before replica 2 took part: the rebalance was not under load"

        # Replica 1 is killed while it consumes the last wave: once it has applied some of it, a burst
        # reaching every partition is sent and SIGKILL follows the burst's acks at once, before replica 1
        # can have applied (let alone committed) its share: records are in flight on its partitions.
        before = (await first.handled()).get("applied", 0)
        active = asyncio.Event()
        trickle = asyncio.create_task(stream.trickle(10, 0.1, until=active, cap=N - BURST))
        try:
            await wait_for(lambda: _processed_more_than(first, before), interval=0.02, timeout=30)
        finally:
            active.set()
            await trickle
        first_counts = await first.handled()
        await stream.send(BURST)
        first.kill()
        killed = time.monotonic()
        sent_at_kill = stream.sent
        at_kill = await realization_applied(db, schema, tag)
        # Replica 2 drains its own partitions; replica 1's wait until the group notices its death (the
        # 10 s session timeout). What is still unapplied then was in flight on the killed replica.
        settled = await _settled(lambda: realization_applied(db, schema, tag), quiet=1.0, limit=5.0)
        in_flight = sent_at_kill - settled
        assert at_kill < N and in_flight > 0, "nothing was in flight on the killed replica: no fault was injected"
        await stream.send(N - stream.sent)  # the rest at once: the survivor takes over replica 1's partitions

    await wait_for(lambda: _at_least(realization_applied(db, schema, tag), N), timeout=45)
    recovery = time.monotonic() - killed
    events = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                            until=lambda rs: len(set(ce_ids(rs, "realization.recorded.v1"))) >= N)
    recorded = ce_ids(events, "realization.recorded.v1")
    applied = await realization_applied(db, schema, tag)
    second_counts = await second.handled()
    row = report("2 replicas + rebalance + kill", sent=N, applied=applied, lost=N - applied,
                 duplicates=len(set(recorded)) - N, recovery_s=recovery, applied_at_join=at_join,
                 sent_at_join=sent_at_join, applied_at_kill=at_kill, sent_at_kill=sent_at_kill,
                 in_flight_at_kill=in_flight,
                 replica1_processed=int(first_counts.get("applied", 0)),
                 replica2_processed=int(second_counts.get("applied", 0)),
                 redelivered_noop=int(first_counts.get("duplicate", 0) + second_counts.get("duplicate", 0)),
                 kafka_copies=len(recorded) - len(set(recorded)))
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert await inbox_count(db, schema) == N
    assert row["replica1_processed"] > 0 and row["replica2_processed"] > 0  # both really took part


async def _has_processed(svc) -> bool:
    return (await svc.handled()).get("applied", 0) > 0


async def _processed_more_than(svc, count: float) -> bool:
    return (await svc.handled()).get("applied", 0) > count


async def _settled(count, *, quiet: float, limit: float) -> int:
    """The value of `count()` once it has not changed for `quiet` seconds (or when `limit` seconds are up)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    last, since = await count(), loop.time()
    while loop.time() < end:
        await asyncio.sleep(0.1)
        value = await count()
        if value != last:
            last, since = value, loop.time()
        elif loop.time() - since >= quiet:
            break
    return last
