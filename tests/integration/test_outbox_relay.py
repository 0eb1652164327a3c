"""The outbox relay on the real stack: rows Kafka refuses are set aside, an outage sets nothing aside,
a transaction of several chunks commits or rolls back as one, keys keep their order and partition."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.ntbctl import commands as ops
from shared.platform import migrations
from shared.platform.db import create_pool
from shared.platform.envelope import CloudEvent
from shared.platform.kafka import MAX_RECORD_BYTES, PRODUCER_BATCH_BYTES, SafeProducer, ensure_topics
from shared.platform.kafka_security import from_env
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import OutboxRelay, pack_headers, write_event
from shared.platform.tasks import cancel_and_wait

from .conftest import BOOTSTRAP, DSN, eventually, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


@pytest.fixture
async def pool(schema_for):
    schema = schema_for("relay")
    pool = await create_pool(DSN, schema, max_size=4)
    async with pool.acquire() as conn:
        await migrations.migrate(conn, schema, migrations.messaging())
    yield pool
    await pool.close()


def event(n: int, data: bytes = b"{}") -> CloudEvent:
    return CloudEvent.new(source="/test/relay", type="ntb.test.thing.happened.v1", data=data, subject=str(n))


async def write_all(pool, events: list[CloudEvent], topic: str, key: str = "k") -> None:
    """The events' outbox rows, one transaction, one key, in order (as a service writes them)."""
    async with pool.acquire() as conn, conn.transaction():
        for e in events:
            await write_event(conn, e, topic=topic, key=key)


async def test_rows_kafka_refuses_are_set_aside_and_the_rest_still_go_out_in_order(pool, schema_for, topic_prefix):
    """A record over the size limit and one with malformed headers move to outbox_dead with their reason;
    the events around them are published, per key in order, and nothing is left in the outbox."""
    topic = topic_prefix + "relay.events"
    good = [event(i) for i in range(3)]
    too_big = event(99, b"x" * (MAX_RECORD_BYTES + 128 * 1024))
    async with pool.acquire() as conn, conn.transaction():
        await write_event(conn, good[0], topic=topic, key="k1")
        await write_event(conn, too_big, topic=topic, key="k1")
        await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, payload) VALUES ($1, $2, $3, $4, $5)",
                           "malformed-1", topic, "k2", {"not": "pairs"}, b"{}")
        await write_event(conn, good[1], topic=topic, key="k1")
        await write_event(conn, good[2], topic=topic, key="k2")
    metrics = ServiceMetrics("relay-test")
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), metrics=metrics)
    try:
        assert await relay.publish_batch() == 3
    finally:
        await producer.stop()

    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    dead = {r["event_id"]: r for r in await pool.fetch("SELECT * FROM outbox_dead")}
    assert set(dead) == {too_big.id, "malformed-1"}
    assert "MessageSizeTooLargeError" in dead[too_big.id]["reason"]
    assert bytes(dead[too_big.id]["payload"]) == too_big.data and dead[too_big.id]["key"] == "k1"
    assert ["ce_id", too_big.id] in dead[too_big.id]["headers"]  # the headers as written, not re-encoded
    assert dead["malformed-1"]["reason"].startswith("malformed headers")
    assert dead["malformed-1"]["headers"] == {"not": "pairs"}
    assert metrics.registry.get_sample_value("ntb_outbox_dead_lettered_total") == 2

    records = await read_topic(topic, expect=3)
    ids = [dict(r.headers)["ce_id"].decode() for r in records]
    assert sorted(ids) == sorted(e.id for e in good)
    by_key = [dict(r.headers)["ce_id"].decode() for r in records if r.key == b"k1"]
    assert by_key == [good[0].id, good[1].id]


async def test_an_unreachable_broker_sets_nothing_aside(pool, schema_for, topic_prefix):
    """Kafka out of reach is not the rows' fault: the batch rolls back and waits, nothing is dead-lettered."""
    async with pool.acquire() as conn, conn.transaction():
        for i in range(3):
            await write_event(conn, event(i), topic=topic_prefix + "relay.events", key="k")
    producer = SafeProducer("127.0.0.1:9", client_id="relay-test", request_timeout_ms=1000)
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"))
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - which connection error aiokafka raises varies
            await relay.publish_batch()
    finally:
        await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    assert await pool.fetchval("SELECT count(*) FROM outbox_dead") == 0


async def test_a_set_aside_row_is_listed_and_requeued_once_for_the_relay(pool, schema_for, topic_prefix,
                                                                          monkeypatch, capsys):
    """`ntbctl outbox list` shows a set-aside row with its reason; `requeue` moves it back (once) and the
    relay publishes it unchanged."""
    monkeypatch.setenv("DATABASE_URL", DSN)
    schema, topic = schema_for("relay"), topic_prefix + "relay.events"
    fixed = event(7)
    await pool.execute(
        "INSERT INTO outbox_dead (id, event_id, topic, key, headers, payload, created_at, reason) "
        "VALUES (41, $1, $2, 'k', $3, $4, now(), 'MessageSizeTooLargeError(...)')",
        fixed.id, topic, [[k, v.decode()] for k, v in fixed.to_headers()], fixed.data)

    assert await ops.outbox_list((schema,)) == 0
    listed = capsys.readouterr().out
    assert f"{schema}\t41\t" in listed and fixed.id in listed and "MessageSizeTooLargeError" in listed

    assert await ops.outbox_requeue(schema, 41) == 0
    assert await ops.outbox_requeue(schema, 41) == 1  # already back: nothing moves twice
    assert "already requeued" in capsys.readouterr().err
    assert await pool.fetchval("SELECT count(*) FROM outbox_dead") == 0

    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    try:
        assert await OutboxRelay(pool, producer, schema=schema).publish_batch() == 1
    finally:
        await producer.stop()
    [record] = await read_topic(topic, expect=1)
    assert dict(record.headers)["ce_id"].decode() == fixed.id and record.value == fixed.data


class NotifiedMidPublish:
    """A real producer that, on its first batch, commits another row and waits until the relay has heard
    of it (the NOTIFY arrived while the batch was still being published)."""

    def __init__(self, producer: SafeProducer, pool, relay_ref: list[OutboxRelay], late: CloudEvent, topic: str):
        self._producer, self._pool, self._relay, self._late, self._topic = producer, pool, relay_ref, late, topic
        self.batches = 0

    async def send_batch(self, records):
        self.batches += 1
        if self.batches == 1:
            async with self._pool.acquire() as conn, conn.transaction():
                await write_event(conn, self._late, topic=self._topic, key="late")
            deadline = asyncio.get_running_loop().time() + 10
            while not self._relay[0]._wake.is_set():  # noqa: SLF001 - the listener got the NOTIFY: it is mid-publish now
                assert asyncio.get_running_loop().time() < deadline, "the NOTIFY never reached the relay"
                await asyncio.sleep(0.01)
        await self._producer.send_batch(records)


async def test_a_row_committed_while_a_batch_is_published_goes_out_without_waiting_for_the_poll(
        pool, schema_for, topic_prefix):
    """The wake-up that arrives mid-publish is kept: with a 60 s poll the late row is still published in seconds."""
    schema, topic = schema_for("relay"), topic_prefix + "relay.events"
    first, late = event(1), event(2)
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay_ref: list[OutboxRelay] = []
    wrapped = NotifiedMidPublish(producer, pool, relay_ref, late, topic)
    relay = OutboxRelay(pool, wrapped, schema=schema, poll_seconds=60)  # type: ignore[arg-type]
    relay_ref.append(relay)
    task = asyncio.create_task(relay.run())
    try:
        # Only once the relay listens is the first row written: its NOTIFY starts the batch, and the
        # late row's NOTIFY is the one that arrives mid-publish.
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'", schema))
        async with pool.acquire() as conn, conn.transaction():
            await write_event(conn, first, topic=topic, key="first")
        records = await read_topic(topic, expect=2, timeout=20)  # far less than the 60 s poll
        assert sorted(dict(r.headers)["ce_id"].decode() for r in records) == sorted([first.id, late.id])
        assert wrapped.batches == 2
        # The batch's delete commits just after the acks the reader may already have seen.
        await eventually(lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=10)
    finally:
        await cancel_and_wait(task)
        await producer.stop()


async def test_header_names_kafka_cannot_encode_are_set_aside_and_the_rest_go_out(pool, schema_for, topic_prefix):
    """A header name that is a number or null passes the relay's own parse but not aiokafka's encoder: the
    row is set aside as malformed (it used to fail its batch on every retry) and the rows around it go out."""
    topic = topic_prefix + "relay.events"
    good = [event(i) for i in range(2)]
    async with pool.acquire() as conn, conn.transaction():
        await write_event(conn, good[0], topic=topic, key="k")
        for event_id, headers in (("number-name", [[1, "x"]]), ("null-name", [[None, "x"]])):
            await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, payload) VALUES ($1, $2, 'k', $3, '{}')",
                               event_id, topic, headers)
        await write_event(conn, good[1], topic=topic, key="k")
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    try:
        assert await OutboxRelay(pool, producer, schema=schema_for("relay")).publish_batch() == 2
    finally:
        await producer.stop()
    dead = {r["event_id"]: r["reason"] for r in await pool.fetch("SELECT event_id, reason FROM outbox_dead")}
    assert set(dead) == {"number-name", "null-name"}
    assert all(reason.startswith("malformed headers") for reason in dead.values())
    assert [dict(r.headers)["ce_id"].decode() for r in await read_topic(topic, expect=2)] == [e.id for e in good]


def produce_like_java(topic: str, keys: list[bytes]) -> None:
    """One record per key with librdkafka, partitioned as the Java client partitions (murmur2)."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "partitioner": "murmur2_random", "acks": "all",
                         **from_env().librdkafka_options()})
    for key in keys:
        producer.produce(topic, key=key, value=b"{}")
    assert producer.flush(30) == 0


class FailingOnSend:
    """A real producer whose `fail_on`-th send_batch raises as a broker out of reach does, after sending."""

    def __init__(self, producer: SafeProducer, fail_on: int):
        self._producer, self._fail_on, self.batches = producer, fail_on, 0

    async def send_batch(self, records):
        self.batches += 1
        await self._producer.send_batch(records)
        if self.batches == self._fail_on:
            raise KafkaConnectionError("broker gone mid-transaction")


async def test_a_refusal_in_a_later_chunk_sets_only_that_row_aside_and_the_rest_keep_their_order(
        pool, schema_for, topic_prefix):
    """A transaction of several chunks: the row Kafka refuses in the second chunk goes to outbox_dead, every
    other row of every chunk is published once, per key in id order, and the outbox is empty."""
    topic = topic_prefix + "relay.events"
    events = [event(i) for i in range(9)]
    too_big = event(99, b"x" * (MAX_RECORD_BYTES + 128 * 1024))
    async with pool.acquire() as conn, conn.transaction():
        for i, e in enumerate(events):
            await write_event(conn, e, topic=topic, key=f"k{i % 2}")
            if i == 4:  # the second chunk (rows 4-6) holds it
                await write_event(conn, too_big, topic=topic, key="k0")
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), batch_size=3, chunks_per_transaction=4)
    try:
        assert await relay.publish_batch() == 9
    finally:
        await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox_dead")] == [too_big.id]
    records = await read_topic(topic, expect=9)
    assert len(records) == 9  # nothing went out twice: the refused row was found before anything was queued
    for key in ("k0", "k1"):
        sent = [dict(r.headers)["ce_id"].decode() for r in records if r.key == key.encode()]
        assert sent == [e.id for i, e in enumerate(events) if f"k{i % 2}" == key]


async def test_a_failure_in_a_later_chunk_rolls_back_every_chunk_the_transaction_took(pool, schema_for, topic_prefix):
    """Kafka fails on the third chunk: the whole transaction rolls back, so the rows of the two chunks already
    acked are back in the outbox too (published again later: at-least-once) and nothing is set aside."""
    topic = topic_prefix + "relay.events"
    events = [event(i) for i in range(8)]
    await write_all(pool, events, topic)
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    failing = FailingOnSend(producer, fail_on=3)
    relay = OutboxRelay(pool, failing, schema=schema_for("relay"), batch_size=2, chunks_per_transaction=4)  # type: ignore[arg-type]
    try:
        with pytest.raises(KafkaConnectionError):
            await relay.publish_batch()
        assert failing.batches == 3
        assert sorted(await pool.fetchval("SELECT array_agg(event_id) FROM outbox")) == sorted(e.id for e in events)
        assert await pool.fetchval("SELECT count(*) FROM outbox_dead") == 0
        # The next transaction publishes them all, in order, after the copies of the first attempt.
        assert await relay.publish_batch() == 8
    finally:
        await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    ids = [dict(r.headers)["ce_id"].decode() for r in await read_topic(topic, expect=14)]
    assert ids[-8:] == [e.id for e in events]


async def test_a_backlog_of_many_chunks_goes_out_per_key_in_id_order_on_the_partition_kafka_clients_agree_on(
        pool, schema_for, topic_prefix):
    """Several transactions of several chunks: every row once, each key's rows in id order, each key on the
    partition librdkafka's murmur2 partitioner (the Java client's) picks for it."""
    topic, probe_topic = topic_prefix + "relay.events", topic_prefix + "relay.probe"
    keys = [f"region-{i}" for i in range(7)] + ["ü-ñ", "k" * 300]
    events = [(event(i), keys[i % len(keys)]) for i in range(61)]
    async with pool.acquire() as conn, conn.transaction():
        for e, key in events:
            await write_event(conn, e, topic=topic, key=key)
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), batch_size=4, chunks_per_transaction=3)
    try:
        published = 0
        while published < len(events):
            published += await relay.publish_batch()
    finally:
        await producer.stop()
    assert published == len(events)
    records = await read_topic(topic, expect=len(events))
    assert len(records) == len(events)
    for key in keys:
        sent = [dict(r.headers)["ce_id"].decode() for r in records if r.key == key.encode()]
        assert sent == [e.id for e, k in events if k == key]
    # librdkafka, told to partition as the Java client does, puts each key where the relay did.
    await asyncio.to_thread(produce_like_java, probe_topic, [key.encode() for key in keys])
    expected = {r.key: r.partition for r in await read_topic(probe_topic, expect=len(keys))}
    assert {r.key: r.partition for r in records} == expected


async def test_a_full_chunk_goes_out_in_a_few_produce_requests_and_arrives_whole(pool, schema_for, topic_prefix):
    """500 rows of ~1 KiB on one partition: with aiokafka's 16 KiB batches that took 30+ produce
    requests one after the other (one in flight per broker); PRODUCER_BATCH_BYTES packs them into
    a handful. Every row still arrives once and in order."""
    topic = topic_prefix + "relay.batched"
    await ensure_topics(BOOTSTRAP, [topic], partitions=1, replication=1)
    events = [event(i, b'{"x": "' + b"y" * 1000 + b'"}') for i in range(500)]
    await write_all(pool, events, topic, key="one-key")
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    kafka = await producer._get()  # noqa: SLF001 - the real producer, to count what it asks of the broker
    requests = []
    send = kafka.client.send

    async def counting_send(node_id, request, **kwargs):
        if type(request).__name__.startswith("ProduceRequest"):
            requests.append(request)
        return await send(node_id, request, **kwargs)

    kafka.client.send = counting_send
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), batch_size=500, chunks_per_transaction=1)
    try:
        assert await relay.publish_batch() == len(events)
    finally:
        await producer.stop()
    assert 1 <= len(requests) <= 1 + (len(events) * 1100) // PRODUCER_BATCH_BYTES, len(requests)
    records = await read_topic(topic, expect=len(events))
    assert [dict(r.headers)["ce_id"].decode() for r in records] == [e.id for e in events]


async def test_a_relay_stopped_while_a_take_is_in_flight_lets_it_finish_before_rolling_back(
        pool, schema_for, topic_prefix):
    """The relay is cancelled (a service stopping) while the next chunk's take is still running in
    PostgreSQL, held here by another transaction's row locks. It lets that take finish before it
    rolls back on the same connection: the cancellation is what the caller sees, the connection
    goes back to the pool usable, every row is still waiting, and the next transaction publishes them."""
    topic = topic_prefix + "relay.events"
    events = [event(i) for i in range(4)]
    await write_all(pool, events, topic)
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), batch_size=2, chunks_per_transaction=2)
    try:
        async with pool.acquire() as locker:
            lock = locker.transaction()
            await lock.start()
            # The second chunk's rows, locked: its DELETE waits for this transaction.
            await locker.execute("SELECT 1 FROM outbox WHERE event_id = ANY($1) FOR UPDATE",
                                 [e.id for e in events[2:]])
            publishing = asyncio.ensure_future(relay.publish_batch())
            # (From another connection: inside a transaction the statistics views keep their first snapshot.)
            await eventually(lambda: pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH taken%'"))
            publishing.cancel()
            await asyncio.sleep(0.5)
            assert not publishing.done()  # still waiting for its take
            await lock.rollback()
            with pytest.raises(asyncio.CancelledError):
                await publishing
        assert sorted(await pool.fetchval("SELECT array_agg(event_id) FROM outbox")) == sorted(e.id for e in events)
        assert await relay.publish_batch() == 4
    finally:
        await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


HOSTILE_PACKS = (
    st.binary(max_size=120)
    | st.lists(st.tuples(st.text(max_size=8) | st.none() | st.integers(), st.binary(max_size=8) | st.none()
                         | st.text(max_size=4)), max_size=4).map(lambda v: msgpack.packb(v, use_bin_type=True))
    | st.sampled_from([pack_headers([("a\x00", b"\x00")]), b"\xdd\xff\xff\xff\xff", msgpack.packb({"ce_id": "x"})])
)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(packs=st.lists(HOSTILE_PACKS, min_size=1, max_size=4))
async def test_any_header_pack_is_published_or_set_aside_and_the_rows_around_it_go_out(
        pool, schema_for, topic_prefix, packs):
    """Rows whose header_pack holds anything at all (written by hand: the platform's writers pack
    what they write in jsonb), between rows written as the services write them: each hostile row is
    published or set aside with a reason (outbox_dead takes it), every good row is published, the
    outbox ends empty and the relay is never stuck."""
    topic = topic_prefix + "relay.packs"
    good = [event(i) for i in range(2)]
    hostile_ids = [f"pack-{uuid.uuid4()}" for _ in packs]
    async with pool.acquire() as conn, conn.transaction():
        await write_event(conn, good[0], topic=topic, key="k")
        for event_id, packed in zip(hostile_ids, packs, strict=True):
            await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, payload, header_pack) "
                               "VALUES ($1, $2, 'k', '[]', '{}', $3)", event_id, topic, packed)
        await write_event(conn, good[1], topic=topic, key="k")
    producer = SafeProducer(BOOTSTRAP, client_id="relay-test")
    relay = OutboxRelay(pool, producer, schema=schema_for("relay"), batch_size=3)
    try:
        published = 0
        for _ in range(5):
            published += await relay.publish_batch()
            if not await pool.fetchval("SELECT count(*) FROM outbox"):
                break
    finally:
        await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    dead = {r["event_id"]: r["reason"] for r in await pool.fetch(
        "SELECT event_id, reason FROM outbox_dead WHERE event_id = ANY($1)", [*hostile_ids, *(e.id for e in good)])}
    assert not set(dead) & {e.id for e in good}
    assert all(reason.startswith("malformed headers") for reason in dead.values()), dead
    assert published == len(good) + len(packs) - len(dead)
