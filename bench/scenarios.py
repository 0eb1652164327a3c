"""B1-B3 (and the B1 half of B5): each framework variant beside its raw baseline, same SQL, same run.

Variants of the framework consumer:
- single: `attach(..., batch_size=1)`, one record per transaction and per offset commit (the default);
- batch:  `attach(..., batch_size=N)`, one transaction and one offset commit per polled batch.
The raw baselines are what a careful engineer would write by hand with aiokafka and asyncpg:
getmany, one transaction per polled batch with the same statements, commit the offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts import registry
from shared.contracts.commitments import SubmitCommitment
from shared.platform.consumer import EventConsumer, HandlerContext, attach
from shared.platform.dead_letter import DeadLetterPublisher
from shared.platform.kafka import MAX_RECORD_BYTES, PRODUCER_BATCH_BYTES, SAFE_PRODUCER, SafeProducer
from shared.platform.kafka_security import client_options
from shared.platform.outbox import Outbox, OutboxRelay

from .harness import (
    BOOTSTRAP,
    CLAIM_MANY,
    OUTBOX_SQL,
    UPSERT,
    Space,
    drop,
    fill_topic,
    new_space,
    prepare,
    raw_outbox_args,
    submit_event,
    submit_events,
    submitted_model,
    submitted_payload,
)

BATCH = 500  # records per poll / per transaction, for the batch variant and the raw loops
TIMEOUT = 900.0


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class ConsumeMemory:
    """RSS of the consume phase alone: the RSS when it starts and the peak while it runs.

    Linux resets a process's peak RSS (VmHWM) on `echo 5 > /proc/self/clear_refs`; the peak of
    everything before (schema, topic fill) is kept apart as `peak_rss_fill_mb`. Where the reset
    is not possible the consume peak is left out (None) rather than guessed.
    """

    def __init__(self) -> None:
        self.fill_peak = peak_rss_mb()
        self.before = _status_mb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = True
        except OSError:
            self.reset = False

    def figures(self) -> dict[str, Any]:
        peak = _status_mb("VmHWM") if self.reset else None
        return {"peak_rss_mb": max(self.fill_peak, peak or 0, peak_rss_mb()), "peak_rss_fill_mb": self.fill_peak,
                "rss_before_consume_mb": self.before, "peak_rss_consume_mb": peak,
                "consume_rss_growth_mb": None if peak is None or self.before is None else round(peak - self.before, 1)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout}s")
        await asyncio.sleep(0.005)


TABLES_MB = ("SELECT round(sum(pg_total_relation_size(c.oid)) / 1048576.0, 1) FROM pg_class c "
             "WHERE c.relname IN ('bench_commitment', 'inbox', 'outbox') AND c.relkind = 'r' "
             "AND c.relnamespace = to_regnamespace(current_schema())")


async def tables_mb(pool: asyncpg.Pool) -> float:
    """Size of the aggregate, inbox and outbox tables with their indexes (how far PostgreSQL grew)."""
    return float(await pool.fetchval(TABLES_MB) or 0)


async def verify(pool: asyncpg.Pool, n: int) -> bool:
    """Every event changed the state once and wrote one outbox row and one inbox row."""
    async with pool.acquire() as conn:
        counts = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("bench_commitment", "outbox", "inbox")]
    return counts == [n, n, n]


# --- the framework consumer ------------------------------------------------------------------

def framework_consumer(space: Space, pool: asyncpg.Pool, on_first: Callable[[], None],
                       upsert_time: list[float] | None = None) -> tuple[EventConsumer, SafeProducer]:
    outbox = Outbox(registry, source="/ntb/rakor/commitments", topic_prefix=space.prefix)
    producer = SafeProducer(BOOTSTRAP, client_id="bench-dlq")
    consumer = EventConsumer(name=f"bench-{space.run_id}", pool=pool, registry=registry, outbox=outbox,
                             dead_letters=DeadLetterPublisher(producer, pool), topic_prefix=space.prefix)

    @consumer.handles(SubmitCommitment)
    async def submitted(cmd: SubmitCommitment, ctx: HandlerContext) -> None:
        on_first()
        t0 = time.perf_counter()
        row = await ctx.conn.fetchrow(UPSERT, cmd.region_code, cmd.submission_id, cmd.total_rp)
        if upsert_time is not None:
            upsert_time[0] += time.perf_counter() - t0
        await ctx.emit(submitted_model(cmd, row["commitment_id"], row["revision"]))

    return consumer, producer


async def b1_framework(n: int, batch_size: int) -> dict[str, Any]:
    space = new_space("b1")
    pool = await prepare(space)
    await fill_topic(space.topic_in, submit_events(n, space.run_id))
    memory = ConsumeMemory()
    started: list[float] = []
    upsert_time = [0.0]
    consumer, producer = framework_consumer(space, pool, lambda: started or started.append(time.perf_counter()),
                                            upsert_time)
    subscription = attach(consumer, BOOTSTRAP, [space.topic_in], batch_size=batch_size, **client_options())
    await subscription.start()
    try:
        await wait_until(lambda: consumer.counts.get("applied", 0) >= n, "framework consumer")
        elapsed = time.perf_counter() - started[0]
    finally:
        await subscription.stop()
        await producer.stop()
    rss = memory.figures()  # before the verification, which is not the consumer's work
    ok = await verify(pool, n) and consumer.counts == {"applied": n}
    pg = {"upsert_us_per_event": round(upsert_time[0] / n * 1e6, 1), "tables_mb": await tables_mb(pool)}
    await pool.close()
    await drop(space)
    return result(n, elapsed, ok) | rss | pg


def result(n: int, elapsed: float, ok: bool) -> dict[str, Any]:
    return {"n": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed, 1),
            "us_per_event": round(elapsed / n * 1e6, 1), "peak_rss_mb": peak_rss_mb(), "verified": ok}


# --- the raw baseline -------------------------------------------------------------------------

async def raw_handle(conn: asyncpg.Connection, name: str, records: list[Any], topic_out: str,
                     upsert_time: list[float] | None = None, *, batched_outbox: bool = False) -> list[tuple[Any, tuple]]:
    """One batch in the caller's transaction: claim all, then state change + outbox row per fresh event.

    `batched_outbox`: the outbox rows in one statement at the end of the batch, as the framework's
    consumer writes them (the stricter baseline `raw_batched`)."""
    heads = [dict(r.headers) for r in records]
    fresh = {(r["source"], r["event_id"]) for r in await conn.fetch(
        CLAIM_MANY, name, [h["ce_source"].decode() for h in heads], [h["ce_id"].decode() for h in heads],
        [h["ce_type"].decode() for h in heads], [r.topic for r in records], [r.partition for r in records],
        [r.offset for r in records])}
    out = []
    for record, head in zip(records, heads, strict=True):
        event_id = head["ce_id"].decode()
        if (head["ce_source"].decode(), event_id) not in fresh:
            continue
        cmd = json.loads(record.value)
        t0 = time.perf_counter()
        row = await conn.fetchrow(UPSERT, cmd["region_code"], cmd["submission_id"], cmd["total_rp"])
        if upsert_time is not None:
            upsert_time[0] += time.perf_counter() - t0
        args = raw_outbox_args(topic_out, cmd["region_code"], submitted_payload(cmd, row["commitment_id"],
                               row["revision"]), event_id, head.get("ce_correlationid", head["ce_id"]).decode())
        if not batched_outbox:
            await conn.execute(OUTBOX_SQL, *args)
        out.append((record, args))
    if batched_outbox and out:
        await Outbox.write_many(conn, [args for _, args in out])
    return out


async def b1_raw(n: int, *, batched_outbox: bool = False) -> dict[str, Any]:
    space = new_space("b1raw")
    pool = await prepare(space)
    await fill_topic(space.topic_in, submit_events(n, space.run_id))
    memory = ConsumeMemory()
    kafka = AIOKafkaConsumer(space.topic_in, bootstrap_servers=BOOTSTRAP, group_id=f"raw-{space.run_id}",
                             enable_auto_commit=False, auto_offset_reset="earliest", **client_options())
    await kafka.start()
    done, started = 0, None
    upsert_time, db_time = [0.0], 0.0  # PostgreSQL's share: the upserts alone, and whole transactions
    try:
        deadline = time.perf_counter() + TIMEOUT
        while done < n and time.perf_counter() < deadline:
            records = list(chain(*(await kafka.getmany(timeout_ms=200, max_records=BATCH)).values()))
            if not records:
                continue
            started = started or time.perf_counter()
            t0 = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await raw_handle(conn, f"raw-{space.run_id}", records, space.topic_out, upsert_time,
                                 batched_outbox=batched_outbox)
            db_time += time.perf_counter() - t0
            await kafka.commit()
            done += len(records)
        elapsed = time.perf_counter() - (started or 0)
    finally:
        await kafka.stop()
    rss = memory.figures()
    ok = await verify(pool, n)
    pg = {"upsert_us_per_event": round(upsert_time[0] / n * 1e6, 1), "db_us_per_event": round(db_time / n * 1e6, 1),
          "tables_mb": await tables_mb(pool)}
    await pool.close()
    await drop(space)
    return result(n, elapsed, ok) | rss | pg


# --- B2: one event in flight -------------------------------------------------------------------

async def ping_pong(space: Space, pings: int, warmup: int = 5) -> list[float]:
    """Send one event, wait for its follow-up on the output topic, repeat. Latencies in ms."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **SAFE_PRODUCER, **client_options())
    out = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False, **client_options())
    await producer.start()
    await out.start()
    out.assign([TopicPartition(space.topic_out, p) for p in range(3)])
    await out.seek_to_end()
    latencies: list[float] = []
    try:
        for i in range(warmup + pings):
            key, value, headers = submit_event(i, space.run_id)
            t0 = time.perf_counter()
            await producer.send_and_wait(space.topic_in, value=value, key=key, headers=headers)
            deadline = t0 + (60 if i < warmup else 10)
            got = False
            while not got:
                if time.perf_counter() > deadline:
                    raise TimeoutError("no follow-up event")
                got = any((await out.getmany(timeout_ms=1000)).values())
            if i >= warmup:
                latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        await out.stop()
        await producer.stop()
    return latencies


def latency_result(latencies: list[float]) -> dict[str, Any]:
    return {"pings": len(latencies), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies), 2),
            "verified": True}  # every ping got its follow-up event, or a TimeoutError ended the run


async def b2_framework(pings: int, batch_size: int) -> dict[str, Any]:
    space = new_space("b2")
    pool = await prepare(space)
    consumer, dlq_producer = framework_consumer(space, pool, lambda: None)
    subscription = attach(consumer, BOOTSTRAP, [space.topic_in], batch_size=batch_size, **client_options())
    relay_producer = SafeProducer(BOOTSTRAP, client_id="bench-relay")
    relay = OutboxRelay(pool, relay_producer, schema=space.schema, poll_seconds=0.5)
    await subscription.start()
    relay_task = asyncio.create_task(relay.run())
    try:
        latencies = await ping_pong(space, pings)
    finally:
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
        await subscription.stop()
        await relay_producer.stop()
        await dlq_producer.stop()
        await pool.close()
        await drop(space)
    return latency_result(latencies)


async def b2_raw(pings: int) -> dict[str, Any]:
    space = new_space("b2raw")
    pool = await prepare(space)
    kafka = AIOKafkaConsumer(space.topic_in, bootstrap_servers=BOOTSTRAP, group_id=f"raw-{space.run_id}",
                             enable_auto_commit=False, auto_offset_reset="earliest", **client_options())
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **SAFE_PRODUCER, **client_options())
    await kafka.start()
    await producer.start()

    async def echo() -> None:
        while True:
            records = list(chain(*(await kafka.getmany(timeout_ms=200, max_records=BATCH)).values()))
            if not records:
                continue
            async with pool.acquire() as conn, conn.transaction():
                written = await raw_handle(conn, f"raw-{space.run_id}", records, space.topic_out)
            for _, (_event_id, topic, key, headers, payload, _pack) in written:
                await producer.send_and_wait(topic, value=payload, key=key.encode(),
                                             headers=[(k, v.encode()) for k, v in headers])
            await kafka.commit()

    task = asyncio.create_task(echo())
    try:
        latencies = await ping_pong(space, pings)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kafka.stop()
        await producer.stop()
        await pool.close()
        await drop(space)
    return latency_result(latencies)


# --- B3: outbox relay --------------------------------------------------------------------------

async def fill_outbox(pool: asyncpg.Pool, space: Space, n: int) -> list[tuple]:
    rows = []
    for i in range(n):
        key, value, _ = submit_event(i, space.run_id)
        rows.append(raw_outbox_args(space.topic_out, key.decode(), value, f"cause-{i}", f"corr-{i}"))
    async with pool.acquire() as conn:  # as the services write them (the headers also packed for the relay)
        for start in range(0, n, 5000):
            await Outbox.write_many(conn, rows[start:start + 5000])
    return rows


async def b3_relay(n: int) -> dict[str, Any]:
    space = new_space("b3")
    pool = await prepare(space)
    await fill_outbox(pool, space, n)
    producer = SafeProducer(BOOTSTRAP, client_id="bench-relay")
    relay = OutboxRelay(pool, producer, schema=space.schema)
    await producer._get()  # noqa: SLF001 - connect before the clock starts, as the raw producer does
    try:
        t0 = time.perf_counter()
        published = 0
        while published < n:
            published += await relay.publish_batch()
        elapsed = time.perf_counter() - t0
        ok = await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await producer.stop()
        await pool.close()
        await drop(space)
    return {"n": n, "seconds": round(elapsed, 3), "rows_per_s": round(n / elapsed, 1), "verified": ok}


async def b3_raw(n: int) -> dict[str, Any]:
    space = new_space("b3raw")
    pool = await prepare(space)
    rows = await fill_outbox(pool, space, n)  # the same records, read from memory instead of the table
    await pool.close()
    # The relay's producer settings (batch size included: it is worth ~1.3x to both sides).
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, max_request_size=MAX_RECORD_BYTES + 64 * 1024,
                                max_batch_size=PRODUCER_BATCH_BYTES, **SAFE_PRODUCER, **client_options())
    await producer.start()
    try:
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            futures = [await producer.send(topic, value=payload, key=key.encode(),
                                           headers=[(k, v.encode()) for k, v in headers])
                       for _, topic, key, headers, payload, _pack in rows[start:start + BATCH]]
            await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
    finally:
        await producer.stop()
        await drop(space)
    return {"n": n, "seconds": round(elapsed, 3), "rows_per_s": round(n / elapsed, 1), "verified": True}


RUNNERS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "b1_raw": b1_raw, "b1_framework": b1_framework, "b2_raw": b2_raw, "b2_framework": b2_framework,
    "b3_raw": b3_raw, "b3_relay": b3_relay,
}
