"""B4, the notifications sender beside raw baselines, in the same run, against the same SMTP sink.

Every variant turns N `commitment.submitted.v1` events on its own Kafka topic into 4 e-mails
each (the shipped routing: two Disnakertrans reviewers, two BPJS staff), with the same
templates and the same MIME bytes (`channels.build_email`), over 4 reused SMTP connections,
into the same sink, and records the outcome in PostgreSQL and on Kafka:

- `service`: the real notifications service (`services.notifications.bootstrap.build`:
  consumer, deliveries, sender, outbox relay publishing DeliverySent);
- `raw`: a hand-written loop: aiokafka `getmany`, the same rendering, aiosmtplib `sendmail`
  (no PIPELINING: aiosmtplib has none) over 4 connections, one DeliverySent-like record per
  e-mail produced to Kafka, one PostgreSQL write per batch, the offsets committed;
- `raw_pipelined`: the same loop sending through `shared.platform.smtp_session.Session`
  (PIPELINING: MAIL, RCPT and DATA in one write).

The sink is Postfix's `smtp-sink` (C, `make smtp-sink`) when there is one, else an aiosmtpd sink,
each in its own process and only counting (`bench/sinks.py`, `record=False`); the report names it.
An event is done when its e-mails are recorded as sent (the service: the deliveries' `sent_at`;
raw: its batch's write), so events/s = N / (last record - first send). CPU per e-mail is read from
/proc around the timed part: this process (the service or the raw loop; the harness only polls once a second), the
sink, and this stack's PostgreSQL server (its postmaster and children). PostgreSQL statements
per e-mail are counted on the client side (asyncpg's query logger on the service's pool: every
statement, BEGIN and COMMIT included). Verified: the sink received exactly the e-mails
expected, every delivery sent once. Variants run `repeats` times in rotating order.

Two idle phases follow, `idle_seconds` each: the whole service started with nothing to do, then
the sender alone (its loop and LISTEN connection, nothing else in the process); CPU and statements
(by text) of each (issue target: <= 1 statement/s, <= 0.1 s CPU per minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contracts import registry
from shared.contracts.commitments import SubmitCommitment
from shared.contracts.topics import COMMITMENTS_EVENTS, dlq
from shared.platform import db as shared_db
from shared.platform.envelope import CloudEvent
from shared.platform.kafka import SAFE_PRODUCER, ensure_topics
from shared.platform.kafka_security import client_options

from .harness import BOOTSTRAP, DSN, PARTITIONS, drop_schema_and_topics, new_space, submit_event, submitted_model
from .rawmail import RawMailer
from .sinks import Sink, start_sink

TIMEOUT = 600.0
RAW_BATCH = 100  # records per getmany, as the service's consumer batch


def submitted_event(i: int, run_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    """(key, value, headers, event id) of one distinct CommitmentSubmitted event."""
    key, value, _ = submit_event(i, run_id)
    cmd = SubmitCommitment.model_validate_json(value)
    payload = submitted_model(cmd, uuid.uuid4(), i + 1)
    event = CloudEvent.new(source="/ntb/rakor/commitments", type=registry.spec_for(payload).type,
                           data=payload.model_dump_json().encode())
    return key, event.data, event.to_headers(), event.id


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_rss_mb() -> float:
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU time of this stack's PostgreSQL server only (postmaster and its children): other
    servers on a shared machine are not counted."""

    def __init__(self, postmaster: int | None) -> None:
        self._postmaster = postmaster

    @classmethod
    async def find(cls) -> PostgresCpu:
        conn = await asyncpg.connect(DSN)
        try:
            data_dir = await conn.fetchval("SHOW data_directory")
        except asyncpg.PostgresError:
            data_dir = None
        finally:
            await conn.close()
        with contextlib.suppress(OSError, ValueError, TypeError):
            return cls(int(Path(data_dir, "postmaster.pid").read_text().split()[0]))
        return cls(None)

    def seconds(self) -> float:
        if self._postmaster is None:
            return 0.0
        total = cpu_seconds(self._postmaster)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == self._postmaster:
                        total += cpu_seconds(int(entry.name))
        return total


# --- statement counting -------------------------------------------------------------------------

class StatementCounter:
    """Counts the statements sent on every connection of pools created while installed."""

    def __init__(self) -> None:
        self.count = 0
        self.by_query: dict[str, int] = {}
        self.keep_queries = False
        self._original = shared_db._init_connection  # noqa: SLF001 - every statement of the service's pool is counted by wrapping its connection set-up

    def _logged(self, record: Any) -> None:
        self.count += 1
        if self.keep_queries:  # the idle phase: which statements run while nothing happens
            key = " ".join(str(record.query).split())[:70]
            self.by_query[key] = self.by_query.get(key, 0) + 1

    async def _init(self, conn: asyncpg.Connection) -> None:
        await self._original(conn)
        conn.add_query_logger(self._logged)

    def __enter__(self) -> StatementCounter:
        shared_db._init_connection = self._init  # noqa: SLF001 - see __init__
        return self

    def __exit__(self, *exc: object) -> None:
        shared_db._init_connection = self._original  # noqa: SLF001 - see __init__


# --- one run ----------------------------------------------------------------------------------

def _settings(space: Any, port: int) -> Any:
    from services.notifications.settings import NotificationsSettings
    return NotificationsSettings(
        kafka_bootstrap_servers=BOOTSTRAP, database_url=DSN, db_schema=space.schema, topic_prefix=space.prefix,
        smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, http_port=0,
    )


async def _produce(producer: AIOKafkaProducer, topic: str, n: int, run_id: str) -> list[str]:
    """N distinct events, built and sent in chunks (the harness's memory stays flat)."""
    ids: list[str] = []
    for first in range(0, n, 1000):
        chunk = [submitted_event(i, run_id) for i in range(first, min(n, first + 1000))]
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h, _ in chunk]
        await asyncio.gather(*futures)
        ids += [e[3] for e in chunk]
    return ids


class Meter:
    """CPU of this process, the sink and PostgreSQL, and the statements counted, between start and stop."""

    def __init__(self, sink: Sink, pg: PostgresCpu, statements: StatementCounter | None) -> None:
        self._sink, self._pg, self._statements = sink, pg, statements

    def start(self) -> None:
        self._t = (time.process_time(), cpu_seconds(self._sink.pid), self._pg.seconds(),
                   self._statements.count if self._statements else 0, self._sink.count())

    def stop(self, emails: int) -> dict[str, Any]:
        now = (time.process_time(), cpu_seconds(self._sink.pid), self._pg.seconds(),
               self._statements.count if self._statements else 0, self._sink.count())
        per = lambda i: round((now[i] - self._t[i]) * 1000 / emails, 3)  # noqa: E731
        return {"cpu_ms_per_email": {"process": per(0), "sink": per(1), "postgres": per(2)},
                "statements": now[3] - self._t[3], "sink_accepted": now[4] - self._t[4]}


async def run_service(n: int, sink: Sink, pg: PostgresCpu) -> dict[str, Any]:
    from services.notifications.bootstrap import build

    space = new_space("b4")
    with StatementCounter() as statements:
        runtime, _ = build(_settings(space, sink.port))
        await runtime.start()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, **SAFE_PRODUCER, **client_options())
    watcher = await asyncpg.connect(DSN, server_settings={"search_path": space.schema})  # not counted
    try:
        await producer.start()
        await asyncio.sleep(3)  # the consumer group has joined its partitions
        meter = Meter(sink, pg, statements)
        meter.start()
        accepted_before = sink.count()  # before the first event: the service sends while they are produced
        t0 = time.time()
        ids = await _produce(producer, runtime.topic(COMMITMENTS_EVENTS), n, space.run_id)
        expected = 4 * n
        deadline = time.monotonic() + max(TIMEOUT, n / 20)
        while True:
            # The table is read only once the sink has accepted every e-mail: a count over every
            # delivery row each second is PostgreSQL work that grows with N (target 6 measures growth).
            done = sink.count() - accepted_before >= expected
            if done or time.monotonic() > deadline:
                totals = await watcher.fetchrow(
                    "SELECT count(*) FILTER (WHERE status = 'sent') AS sent, count(*) AS emails, "
                    "extract(epoch FROM max(sent_at))::float8 AS last FROM deliveries WHERE channel = 'email'")
                if totals["sent"] >= expected:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"B4 service: {totals['sent']}/{expected} e-mails sent")
            await asyncio.sleep(1.0)  # the figures come from sent_at, not from when this notices
        used = meter.stop(expected)
        elapsed = totals["last"] - t0
        events = await watcher.fetchval("SELECT count(DISTINCT source_event_id) FROM deliveries "
                                        "WHERE source_event_id = ANY($1::text[])", ids)
        once = await watcher.fetchval("SELECT count(*) = count(DISTINCT delivery_id) AND bool_and(attempts = 1) "
                                      "FROM deliveries")
        # Where the time went: the first e-mail recorded sent, and the consumer's last write of deliveries.
        first, consumed = await watcher.fetchrow(
            "SELECT extract(epoch FROM min(sent_at))::float8, extract(epoch FROM max(created_at))::float8 "
            "FROM deliveries")
        used |= {"first_sent_s": round(first - t0, 3), "consumer_done_s": round(consumed - t0, 3)}
        return _result(n, elapsed, used, events == n and once and used["sink_accepted"] == expected) | {
            "rss_mb": rss_mb()}
    finally:
        await watcher.close()
        await producer.stop()
        await runtime.stop()
        await drop_schema_and_topics(space.schema, [*runtime.topics_in, *runtime.topics_out,
                                                    *(dlq(t) for t in runtime.topics_in)])


def _result(n: int, elapsed: float, used: dict[str, Any], verified: bool) -> dict[str, Any]:
    emails = 4 * n
    return {"n": n, "emails": emails, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed, 1),
            "emails_per_s": round(emails / elapsed, 1), **used,
            "statements_per_email": round(used["statements"] / emails, 3), "verified": verified}


RAW_TABLE = ("CREATE TABLE IF NOT EXISTS bench_b4_sent (delivery_id uuid PRIMARY KEY, event_id text NOT NULL, "
             "recipient_id text NOT NULL, sent_at timestamptz NOT NULL)")
RAW_WRITE = ("INSERT INTO bench_b4_sent (delivery_id, event_id, recipient_id, sent_at) "
             "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])")


async def run_raw(n: int, sink: Sink, pg: PostgresCpu, *, pipelined: bool) -> dict[str, Any]:
    """The hand-written loop (see the module's docstring); `pipelined` sends through smtp.Session."""
    space = new_space("b4raw")
    settings = _settings(space, sink.port)
    topic_in, topic_out = space.prefix + "in", space.prefix + "out"
    await ensure_topics(BOOTSTRAP, [topic_in, topic_out], partitions=PARTITIONS, replication=1)
    conn = await asyncpg.connect(DSN)
    await conn.execute(f'CREATE SCHEMA "{space.schema}"')
    await conn.execute(f'SET search_path = "{space.schema}"')
    await conn.execute(RAW_TABLE)
    mailer = RawMailer(settings, pipelined=pipelined)
    consumer = AIOKafkaConsumer(topic_in, bootstrap_servers=BOOTSTRAP, group_id=space.prefix + "raw",
                                enable_auto_commit=False, auto_offset_reset="earliest", **client_options())
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, **SAFE_PRODUCER, **client_options())
    try:
        await consumer.start()
        await producer.start()
        await mailer.open()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        meter = Meter(sink, pg, None)
        meter.start()
        t0 = time.time()
        produced = asyncio.create_task(_produce(producer, topic_in, n, space.run_id))
        done = writes = 0
        last = t0
        while done < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=RAW_BATCH)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                continue
            emails = [e for record in records for e in mailer.emails(record)]
            await mailer.send(emails)
            now = datetime.now().astimezone()
            acks = [await producer.send(topic_out, key=e.event_id.encode(), value=json.dumps(
                {"delivery_id": str(e.delivery_id), "event_id": e.event_id, "recipient_id": e.recipient_id,
                 "status": "sent"}).encode()) for e in emails]
            await asyncio.gather(*acks)
            await conn.execute(RAW_WRITE, [e.delivery_id for e in emails], [e.event_id for e in emails],
                               [e.recipient_id for e in emails], [now] * len(emails))
            writes += 1
            await consumer.commit()
            done += len(records)
            last = time.time()
        await produced
        used = meter.stop(4 * n)
        used["statements"] = writes
        sent = await conn.fetchval("SELECT count(*) FROM bench_b4_sent")
        return _result(n, last - t0, used, sent == 4 * n and used["sink_accepted"] == 4 * n)
    finally:
        await mailer.close()
        await consumer.stop()
        await producer.stop()
        await conn.close()
        await drop_schema_and_topics(space.schema, [topic_in, topic_out])


async def _idle_figures(seconds: float, statements: StatementCounter) -> dict[str, Any]:
    """CPU of this process and the statements counted over `seconds` of nothing to do (both idle phases)."""
    statements.keep_queries = True
    cpu0, count0, t0 = time.process_time(), statements.count, time.monotonic()
    await asyncio.sleep(seconds)
    cpu, count, elapsed = time.process_time() - cpu0, statements.count - count0, time.monotonic() - t0
    return {"seconds": round(elapsed, 1), "cpu_s_per_minute": round(cpu * 60 / elapsed, 4),
            "statements": count, "statements_per_s": round(count / elapsed, 3),
            "by_statement": dict(sorted(statements.by_query.items(), key=lambda kv: -kv[1])[:8])}


async def run_idle(seconds: float, sink: Sink) -> dict[str, Any]:
    """The service started with nothing to do: CPU and statements over `seconds` (after 5 s to settle)."""
    from services.notifications.bootstrap import build

    space = new_space("b4idle")
    with StatementCounter() as statements:
        runtime, _ = build(_settings(space, sink.port))
        await runtime.start()
    try:
        await asyncio.sleep(5)
        return await _idle_figures(seconds, statements) | {
            "note": "the whole service (consumer, relay, timers, sender) in this process"}
    finally:
        await runtime.stop()
        await drop_schema_and_topics(space.schema, [*runtime.topics_in, *runtime.topics_out,
                                                    *(dlq(t) for t in runtime.topics_in)])


async def run_sender_idle(seconds: float, sink: Sink) -> dict[str, Any]:
    """The sender alone (its loop and its LISTEN), nothing else in the process: its own idle cost."""
    import httpx

    from services.notifications.bootstrap import default_channels, migration_sets
    from services.notifications.sender import Sender
    from shared.contracts.registry import registry as event_registry
    from shared.platform import migrations
    from shared.platform.outbox import Outbox
    from shared.platform.tasks import cancel_and_wait
    from shared.platform.timers import system_clock

    space = new_space("b4idle")
    settings = _settings(space, sink.port)
    with StatementCounter() as statements:
        pool = await shared_db.create_pool(DSN, space.schema, min_size=1, max_size=4)
    http = httpx.AsyncClient()
    task = None
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, space.schema, [m for group in migration_sets() for m in group])
        sender = Sender(pool, Outbox(event_registry, source="/bench"), default_channels(settings, http), settings,
                        clock=system_clock)
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(2)
        return await _idle_figures(seconds, statements)
    finally:
        if task is not None:
            await cancel_and_wait(task)
        await http.aclose()
        await pool.close()
        await drop_schema_and_topics(space.schema, [])


VARIANTS = ("raw", "raw_pipelined", "service")


async def run_b4(n: int, repeats: int = 1, idle_seconds: float = 0) -> dict[str, Any]:
    """Each variant `repeats` times in rotating order; the median run per variant and the ratios per round."""
    sink = start_sink(record=False)
    pg = await PostgresCpu.find()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    try:
        for r in range(repeats):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for variant in order:
                if variant == "service":
                    res = await run_service(n, sink, pg)
                else:
                    res = await run_raw(n, sink, pg, pipelined=variant == "raw_pipelined")
                res["load_avg"] = [round(x, 2) for x in os.getloadavg()]
                runs[variant].append(res)
        out: dict[str, Any] = {"sink": sink.name, "n": n, "repeats": repeats}
        for variant in VARIANTS:
            ordered = sorted(runs[variant], key=lambda x: x["events_per_s"])
            out[variant] = dict(ordered[len(ordered) // 2]) | {"runs": [x["events_per_s"] for x in runs[variant]]}
        svc = runs["service"]
        for base in ("raw", "raw_pipelined"):
            thr = [round(s["events_per_s"] / b["events_per_s"], 3) for s, b in zip(svc, runs[base], strict=False)]
            cpu = [round(s["cpu_ms_per_email"]["process"] / b["cpu_ms_per_email"]["process"], 3)
                   for s, b in zip(svc, runs[base], strict=False)]
            out[f"vs_{base}"] = {"events_per_s_ratio": sorted(thr)[len(thr) // 2], "round_ratios": thr,
                                 "cpu_per_email_ratio": sorted(cpu)[len(cpu) // 2], "cpu_round_ratios": cpu}
        out["verified"] = all(x["verified"] for v in VARIANTS for x in runs[v])
        if idle_seconds:
            out["idle"] = await run_idle(idle_seconds, sink)
            out["idle_sender_alone"] = await run_sender_idle(idle_seconds, sink)
        return out
    finally:
        sink.stop()


async def run_b4_saturation(n: int) -> dict[str, Any]:
    """The service alone at N (B5's growth points, each in a fresh process)."""
    sink = start_sink(record=False)
    try:
        res = await run_service(n, sink, await PostgresCpu.find())
        return {"saturation": res | {"peak_rss_mb": peak_rss_mb(), "rss_mb_before": res["rss_mb"],
                                     "cpu_ms_per_event": {
                                         "service": round(res["cpu_ms_per_email"]["process"] * 4, 3),
                                         "sink": round(res["cpu_ms_per_email"]["sink"] * 4, 3),
                                         "postgres": round(res["cpu_ms_per_email"]["postgres"] * 4, 3)}},
                "sink": sink.name, "verified": res["verified"]}
    finally:
        sink.stop()

