"""The consumer's one path, batch of one or of many, against an in-memory inbox (no PostgreSQL, no Kafka).

The stand-in keeps the inbox claims and the handlers' writes, and undoes them when a
transaction or a savepoint ends with an exception, as PostgreSQL does. The same
guarantees on real PostgreSQL and Kafka: tests/integration/test_batch_consumer.py,
test_delivery_guarantees.py, tests/faults/test_poison.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shared.contracts import registry
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.notifications import Channel, DeliveryFailed
from shared.contracts.topics import INVITATIONS_EVENTS
from shared.platform.consumer import APPLIED, DEAD_LETTERED, DUPLICATE, EventConsumer, HandlerContext
from shared.platform.dead_letter import KafkaRecord
from shared.platform.envelope import CloudEvent
from shared.platform.errors import Conflict
from shared.platform.outbox import Outbox, unpack_headers

TYPE = registry.spec_for(MeetingScheduled).type


class Database:
    """The inbox and a journal of handled event ids; a transaction (or savepoint) that raises undoes its part."""

    def __init__(self) -> None:
        self.inbox: set[tuple[str, str, str]] = set()
        self.journal: list[str] = []
        self.outbox: list[dict[str, Any]] = []  # the rows Outbox.write_many wrote
        self.outbox_statements = 0
        self.refuse_outbox: BaseException | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        inbox, journal, outbox = set(self.inbox), list(self.journal), list(self.outbox)
        try:
            yield
        except BaseException:
            self.inbox, self.journal, self.outbox = inbox, journal, outbox
            raise

    async def execute(self, sql: str, ids: list[str], topics: list[str], keys: list[str], headers: list[str],
                      payloads: list[bytes], packs: list[bytes]) -> str:
        """Outbox.INSERT_MANY: the rows in order (or PostgreSQL's refusal of them)."""
        assert sql == Outbox.INSERT_MANY
        self.outbox_statements += 1
        if self.refuse_outbox is not None:
            raise self.refuse_outbox
        for h, pack in zip(headers, packs, strict=True):  # the relay's copy says what the jsonb says
            assert [[k, v.decode()] for k, v in unpack_headers(pack)] == json.loads(h)
        self.outbox += [{"event_id": i, "topic": t, "key": k, "headers": dict(json.loads(h)), "payload": p}
                        for i, t, k, h, p in zip(ids, topics, keys, headers, payloads, strict=True)]
        return "INSERT 0 1"

    async def fetch(self, _sql: str, consumer: str, sources: list[str], ids: list[str], *_rest: Any) -> list[dict]:
        """inbox.CLAIM_MANY: the pairs not claimed before."""
        fresh = []
        for source, event_id in zip(sources, ids, strict=True):
            if (consumer, source, event_id) not in self.inbox:
                self.inbox.add((consumer, source, event_id))
                fresh.append({"source": source, "event_id": event_id})
        return fresh


class Pool:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Database]:
        yield self.db


class DeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[int, str]] = []

    async def publish(self, record: KafkaRecord, *, reason: str, consumer: str) -> None:
        self.published.append((record.offset, reason))


def event(**overrides: Any) -> CloudEvent:
    start = datetime.now(UTC) + timedelta(days=10)
    payload = MeetingScheduled(meeting_id=uuid.uuid4(), title="Rakor", starts_at=start,
                               ends_at=start + timedelta(hours=2), venue="Mataram", organizer="Wagub NTB")
    return CloudEvent.new(source="/test", type=TYPE, data=payload.model_dump_json().encode(), **overrides)


def record(offset: int, e: CloudEvent) -> KafkaRecord:
    key = str(MeetingScheduled.model_validate_json(e.data).meeting_id).encode()
    return KafkaRecord(INVITATIONS_EVENTS, 0, offset, key, e.data, tuple(e.to_headers()))


def consumer_with(behaviour: dict[str, BaseException], calls: list[str], *,
                  emits: bool = False) -> tuple[EventConsumer, Database, DeadLetters]:
    """A consumer whose handler journals each event (`emits`: and emits a follow-up through the
    service's Outbox), then raises `behaviour[event id]` if there is one."""
    db, dead = Database(), DeadLetters()
    outbox = Outbox(registry, source="/ntb/unit") if emits else None
    consumer = EventConsumer(name="unit", pool=Pool(db), registry=registry, outbox=outbox,  # type: ignore[arg-type]
                             dead_letters=dead, max_attempts=2, backoff_cap=0.05)  # type: ignore[arg-type]

    @consumer.handles(MeetingScheduled)
    async def handle(payload: MeetingScheduled, ctx: HandlerContext) -> None:
        calls.append(ctx.event.id)
        db.journal.append(ctx.event.id)
        if emits:
            await ctx.emit(follow_up(ctx.event))
        if ctx.event.id in behaviour:
            raise behaviour[ctx.event.id]

    return consumer, db, dead


def follow_up(cause: CloudEvent) -> DeliveryFailed:
    return DeliveryFailed(delivery_id=uuid.uuid4(), recipient_id="r-1", channel=Channel.EMAIL,
                          source_event_id=cause.id, source_event_type=cause.type, attempts=0,
                          at=datetime.now(UTC), reason="test")


async def test_a_lone_rejected_record_is_dead_lettered_at_once_its_effects_undone():
    """A batch of one refused by its handler: run once (nothing to replay), dead-lettered, claim and writes undone."""
    e, calls = event(), []
    consumer, db, dead = consumer_with({e.id: Conflict("meeting refused")}, calls)
    [outcome] = await consumer.process_batch([record(7, e)])
    assert (outcome.status, outcome.reason) == (DEAD_LETTERED, "rejected: meeting refused")
    assert calls == [e.id]
    assert db.journal == [] and db.inbox == set()
    assert dead.published == [(7, "rejected: meeting refused")]
    assert consumer.counts == {DEAD_LETTERED: 1}


async def test_a_lone_record_refused_by_postgresql_names_the_column():
    e, calls = event(), []
    refusal = asyncpg.NotNullViolationError("null value in column")
    refusal.column_name = "title"  # type: ignore[attr-defined]
    consumer, db, _ = consumer_with({e.id: refusal}, calls)
    [outcome] = await consumer.process_batch([record(0, e)])
    assert outcome.status == DEAD_LETTERED
    assert outcome.reason and outcome.reason.startswith("database refused the data") and "column title" in outcome.reason
    assert calls == [e.id] and db.inbox == set()


async def test_a_lone_failing_record_is_retried_then_dead_lettered():
    e, calls = event(), []
    consumer, db, _ = consumer_with({e.id: RuntimeError("bug in handler")}, calls)
    [outcome] = await consumer.process_batch([record(0, e)])
    assert outcome.reason and outcome.reason.startswith("handler failed 2 times: RuntimeError: bug in handler")
    assert calls == [e.id, e.id] and db.journal == [] and db.inbox == set()


async def test_a_lone_record_applied_then_redelivered_is_a_duplicate():
    e, calls = event(), []
    consumer, db, _ = consumer_with({}, calls)
    assert [o.status for o in await consumer.process_batch([record(0, e)])] == [APPLIED]
    assert [o.status for o in await consumer.process_batch([record(0, e)])] == [DUPLICATE]
    assert calls == [e.id] and db.journal == [e.id]
    assert consumer.counts == {APPLIED: 1, DUPLICATE: 1}


async def test_a_batch_isolates_the_rejected_record_and_keeps_the_others():
    good, rejected = [event() for _ in range(3)], event()
    calls: list[str] = []
    consumer, db, dead = consumer_with({rejected.id: Conflict("no")}, calls)
    batch = [record(0, good[0]), record(1, rejected), record(2, good[1]), record(3, good[0]), record(4, good[2])]
    outcomes = await consumer.process_batch(batch, skips=None)
    assert [o.status for o in outcomes] == [APPLIED, DEAD_LETTERED, APPLIED, DUPLICATE, APPLIED]
    assert db.journal == [good[0].id, good[1].id, good[2].id]
    assert dead.published == [(1, "rejected: no")]


async def test_an_operator_skip_dead_letters_the_record_without_running_its_handler():
    e, other, calls = event(), event(), []
    consumer, _, dead = consumer_with({}, calls)
    outcomes = await consumer.process_batch([record(0, e), record(1, other)],
                                            skips={(INVITATIONS_EVENTS, 0, 0): "moved past by an operator (ops): hangs"})
    assert [o.status for o in outcomes] == [DEAD_LETTERED, APPLIED]
    assert calls == [other.id] and dead.published == [(0, "moved past by an operator (ops): hangs")]


async def test_a_consumer_without_a_pool_says_so():
    consumer = EventConsumer(name="unit", registry=registry, outbox=None, dead_letters=DeadLetters())  # type: ignore[arg-type]
    consumer.handles(MeetingScheduled)(lambda payload, ctx: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(RuntimeError, match="has no pool"):
        await consumer.process_batch([record(0, event())])


async def test_a_batch_writes_its_follow_up_events_in_one_statement_in_order_correlated():
    """The events a batch's handlers emit reach the outbox in one statement before the commit, in the order
    emitted, each correlated with the event that caused it and naming it as the cause."""
    consumed = [event(correlation_id=f"corr-{n}") for n in range(3)]
    calls: list[str] = []
    consumer, db, _ = consumer_with({}, calls, emits=True)
    outcomes = await consumer.process_batch([record(n, e) for n, e in enumerate(consumed)])
    assert [o.status for o in outcomes] == [APPLIED] * 3
    assert db.outbox_statements == 1
    assert [r["headers"]["ce_causationid"] for r in db.outbox] == [e.id for e in consumed]
    assert [r["headers"]["ce_correlationid"] for r in db.outbox] == ["corr-0", "corr-1", "corr-2"]
    assert [r["headers"]["ce_source"] for r in db.outbox] == ["/ntb/unit"] * 3
    assert [json.loads(r["payload"])["source_event_id"] for r in db.outbox] == [e.id for e in consumed]


async def test_a_refused_records_follow_up_is_undone_with_it_and_the_others_are_written():
    """A record refused after emitting: its outbox row goes with its savepoint; the others' rows are written."""
    good, rejected = [event() for _ in range(3)], event()
    calls: list[str] = []
    consumer, db, dead = consumer_with({rejected.id: Conflict("no")}, calls, emits=True)
    batch = [record(0, good[0]), record(1, rejected), record(2, good[1]), record(3, good[2])]
    outcomes = await consumer.process_batch(batch)
    assert [o.status for o in outcomes] == [APPLIED, DEAD_LETTERED, APPLIED, APPLIED]
    assert [r["headers"]["ce_causationid"] for r in db.outbox] == [e.id for e in good]
    assert dead.published == [(1, "rejected: no")]


async def test_a_lone_record_whose_follow_up_postgresql_refuses_is_dead_lettered_after_one_run():
    """The outbox row is written at the end of the batch; in a batch of one that write is the record's own."""
    e, calls = event(), []
    consumer, db, dead = consumer_with({}, calls, emits=True)
    db.refuse_outbox = asyncpg.DataError("invalid byte sequence")
    [outcome] = await consumer.process_batch([record(0, e)])
    assert outcome.status == DEAD_LETTERED and outcome.reason and "SQLSTATE" in outcome.reason
    assert calls == [e.id] and db.outbox == [] and db.inbox == set() and db.journal == []
    assert [offset for offset, _ in dead.published] == [0]
