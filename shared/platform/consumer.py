"""One consumer loop for every service: decode, validate, dedupe, handle, commit.

Records come in polled batches (a single record is a batch of one) and every batch goes
the same way:
1. Decode each CloudEvent and validate its payload against the registered model. A
   record that cannot be read (bad bytes or headers, a type not documented for the
   topic it came on, an invalid payload, a Kafka key that is not the payload's key) is
   dead-lettered with the reason and the consumer moves on. A type documented for the
   topic that this consumer does not act on is applied as a no-op. Nothing is skipped:
   every record ends applied, duplicate or dead_lettered, counted per topic in
   `ntb_consumer_records_total`.
2. In one PostgreSQL transaction: claim the event ids in the inbox (a duplicate stops
   there), run the handlers in order, write their follow-up events to the outbox (built
   when emitted, written together in one statement just before the commit).
3. Return, and only then does the subscriber commit the offsets.

Transient failures (database or Kafka unreachable) retry with backoff for as long as
it takes: no record is ever skipped. A handler that rejects an event for good raises a
`DomainError` (shared.platform.errors) and the event is dead-lettered; so is one
PostgreSQL refuses for its data (SQLSTATE classes 22 and 54, check and not-null
violations): retrying cannot help. Either replays the batch with a savepoint per record,
so only the refused record's effects are undone and it alone is dead-lettered. Any other
exception counts against the record that raised it, which is retried `max_attempts`
times and then dead-lettered, loudly, so one poison event cannot stall its partition.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.contracts.registry import TEXT_CHECKED, EventPayload, EventRegistry
from shared.platform import inbox
from shared.platform.db import TRANSIENT_DB_ERRORS
from shared.platform.dead_letter import DeadLetterPublisher, KafkaRecord
from shared.platform.envelope import CloudEvent, EnvelopeError, decode
from shared.platform.errors import DomainError
from shared.platform.logging import get_logger, message_context
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import Outbox, row as outbox_row
from shared.platform.retry import backoff_delays
from shared.platform.unit_of_work import Actor, StoreFactory, TransactionScope, UnitOfWork

log = get_logger(__name__)
P = TypeVar("P", bound=EventPayload)


TRANSIENT: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, KafkaError)
# PostgreSQL refuses the data itself: the same record fails the same way every time.
PERMANENT_DB: tuple[type[Exception], ...] = (
    asyncpg.DataError,                   # class 22: out of range, bad encoding, NUL, invalid text
    asyncpg.ProgramLimitExceededError,   # class 54: e.g. an index row over the btree limit
    asyncpg.CheckViolationError,
    asyncpg.NotNullViolationError,
)


# Refusals retrying cannot change: the handler's (any DomainError) and PostgreSQL's of the data.
REFUSALS: tuple[type[Exception], ...] = (DomainError, *PERMANENT_DB)


def db_refusal(exc: BaseException) -> str:
    """A dead letter's reason for a PostgreSQL refusal, naming the column or constraint when known."""
    where = [f"{name} {value}" for name, value in (("column", getattr(exc, "column_name", None)),
                                                   ("constraint", getattr(exc, "constraint_name", None)),
                                                   ("table", getattr(exc, "table_name", None))) if value]
    state = getattr(exc, "sqlstate", None)
    detail = f" ({', '.join(where)})" if where else ""
    return f"database refused the data: SQLSTATE {state} {type(exc).__name__}{detail}: {str(exc)[:300]}"


def _refusal(exc: BaseException) -> str:
    """The dead letter's reason for one of the REFUSALS."""
    return f"rejected: {exc}" if isinstance(exc, DomainError) else db_refusal(exc)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerContext(UnitOfWork[Any]):
    """The unit of work of one consumed event, and where the event came from.

    Its actor is the event's source, its `emit` correlates follow-ups with the event and
    names it as their cause; the events of one batch (one transaction) share `scope`."""

    event: CloudEvent
    topic: str
    partition: int
    offset: int

    async def emit(self, payload: EventPayload) -> CloudEvent:
        """Build the event now (correlated, caused by the consumed one, in its trace); its outbox row
        is written with the transaction's others in one statement just before the commit, or inside
        the record's savepoint when a batch is replayed record by record (TransactionScope)."""
        outbox = self.outbox
        if not isinstance(outbox, Outbox):  # a stand-in sink (unit tests) writes at once
            return await UnitOfWork.emit(self, payload)
        event, topic, key = outbox.build(payload, correlation_id=self.correlation_id, causation_id=self.causation_id)
        self.scope.emitted(outbox.write_many).append(outbox_row(event, topic=topic, key=key))
        return event


Handler = Callable[[P, HandlerContext], Awaitable[None]]


APPLIED, DUPLICATE, DEAD_LETTERED = "applied", "duplicate", "dead_lettered"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # applied | duplicate | dead_lettered: nothing else, nothing skipped
    reason: str | None = None


@dataclass(slots=True)
class _Route(Generic[P]):
    model: type[P]
    handler: Handler[P]


@dataclass(slots=True)
class _Item:
    """One record of a batch on its way to an outcome."""

    record: KafkaRecord
    event: CloudEvent | None = None
    route: _Route[Any] | None = None
    payload: Any = None
    outcome: Outcome | None = None
    refused: str | None = None  # the dead letter's reason, set while the batch is handled

    def context(self, consumer: str, **fields: Any) -> AbstractContextManager[None]:
        """The record's (and, once checked, its event's) fields on every log line written inside."""
        r, e = self.record, self.event
        return message_context(topic=r.topic, partition=r.partition, offset=r.offset, consumer=consumer,
                               event_id=getattr(e, "id", None), event_type=getattr(e, "type", None),
                               correlation_id=getattr(e, "correlation_id", None),
                               region_code=getattr(self.payload, "region_code", None), **fields)


class EventConsumer:
    """Handlers by event type, and the one path that takes a batch of records to their outcomes.

    A `Runtime` builds its consumers before it connects (handlers register at import) and
    gives them the pool at start (`bind`)."""

    def __init__(
        self,
        *,
        name: str,
        registry: EventRegistry,
        outbox: Outbox,
        dead_letters: DeadLetterPublisher,
        pool: asyncpg.Pool | None = None,
        max_attempts: int = 5,
        backoff_cap: float = 30.0,
        topic_prefix: str = "",
        after_commit: Callable[[CloudEvent], Awaitable[None] | None] | None = None,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: StoreFactory | None = None,
    ) -> None:
        self.name = name
        self._pool = pool
        self._registry = registry
        self._outbox = outbox
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._backoff_cap = backoff_cap
        self._topic_prefix = topic_prefix
        self._accepted_on: dict[str, list[str]] = {}
        self.after_commit = after_commit  # fault-injection point for tests: called per record after the commit
        self._routes: dict[str, _Route[Any]] = {}
        self.counts: dict[str, int] = {}
        self._metrics = metrics
        self._clock = clock
        self._store = store

    def bind(self, pool: asyncpg.Pool) -> None:
        """The pool the handlers' transactions run on (given by `Runtime.start`)."""
        self._pool = pool

    def handles(self, model: type[P]) -> Callable[[Handler[P]], Handler[P]]:
        """Decorator: `@consumer.handles(MeetingScheduled)` on `async def f(payload, ctx)`."""
        spec = self._registry.spec_for(model)

        def register(handler: Handler[P]) -> Handler[P]:
            self._routes[spec.type] = _Route(model, handler)
            return handler

        return register

    @property
    def event_types(self) -> list[str]:
        return list(self._routes)

    def logical_topic(self, topic: str) -> str:
        """The topic's name in the contracts (without the deployment's `topic_prefix`)."""
        prefix = self._topic_prefix
        return topic[len(prefix):] if prefix and topic.startswith(prefix) else topic

    async def process_batch(self, records: list[KafkaRecord],
                            skips: dict[tuple[str, int, int], str] | None = None) -> list[Outcome]:
        """Handle a polled batch (one record or many) in ONE transaction. Raises only when cancelled, or
        when a refusal belongs to no single record (e.g. at the commit): the caller reads the batch again.

        Undecodable/invalid records are dead-lettered. The rest are claimed in the inbox
        with one statement and handled in order in one transaction. A handler's
        `DomainError` (or a PostgreSQL data refusal) rolls the batch back and replays it
        with a savepoint per record, so only the rejected record's effects are undone and
        it alone is dead-lettered (a batch of one needs no replay). Transient failures
        retry the whole batch; an unexpected error counts against the record that raised
        it, which is dead-lettered after `max_attempts`. `skips` names records an operator moved the consumer past
        ((topic, partition, offset) -> reason): they are dead-lettered with that reason.
        The offsets are committed by the caller after this returns, i.e. after the commit.
        """
        started = time.perf_counter()
        items = [_Item(record) for record in records]
        work: list[_Item] = []
        for item in items:
            record = item.record
            skip = skips.get((record.topic, record.partition, record.offset)) if skips else None
            checked = Outcome(DEAD_LETTERED, skip) if skip is not None else self._check(record)
            if isinstance(checked, Outcome):
                item.refused = checked.reason or ""
                continue
            item.event, item.route, item.payload = checked
            if item.route is None:
                item.outcome = Outcome(APPLIED, f"{item.event.type} is not acted on by {self.name}")
            else:
                work.append(item)
        if work:
            await self._apply(work)
        for item in items:
            if item.refused is not None:
                item.outcome = await self._dead_letter(item, item.refused)
        # Counted once the batch is done: a batch re-run (an operator's skip) is consumed once.
        self._count_consumed(records)
        return self._done(items, started)

    def _check(self, record: KafkaRecord) -> tuple[CloudEvent, _Route[Any] | None, Any] | Outcome:
        """The event, its route (None: a documented type this consumer does not act on) and payload,
        or the dead-letter outcome that ends processing here."""
        try:
            event = decode(record.value, record.headers)
        except EnvelopeError as exc:
            return Outcome(DEAD_LETTERED, f"undecodable: {exc}")
        topic = self.logical_topic(record.topic)
        accepted = self._accepted(topic)
        if event.type not in accepted:
            return Outcome(DEAD_LETTERED, f"type {event.type[:120]!r} is not accepted on {topic} "
                                          f"(accepted: {', '.join(accepted) or 'none'})")
        spec = self._registry.spec(event.type)
        # The strict parser refuses raw control characters and bytes that are not UTF-8, so NUL or a
        # lone surrogate can only come from a \u escape: without one the contract need not look.
        checked = TEXT_CHECKED if b"\\u" not in event.data else None
        try:
            payload = spec.model.model_validate(event.data_json(), context=checked)
        except EnvelopeError as exc:
            return Outcome(DEAD_LETTERED, f"undecodable: {exc}")
        except ValidationError as exc:
            return Outcome(DEAD_LETTERED, f"invalid {event.type} payload: {_summarize(exc)}")
        expected = spec.key_of(payload).encode()
        if record.key != expected:
            shown = "no key" if record.key is None else f"key {record.key[:60]!r}"
            return Outcome(DEAD_LETTERED, f"{shown} does not match the payload: a {event.type} record is keyed "
                                          f"by {expected.decode()!r}")
        return event, self._routes.get(event.type), payload

    def _accepted(self, topic: str) -> list[str]:
        """The types documented for `topic` (a logical name): exactly what this consumer accepts there."""
        if topic not in self._accepted_on:
            self._accepted_on[topic] = self._registry.types_on(topic)
        return self._accepted_on[topic]

    async def _apply(self, work: list[_Item]) -> None:
        """Run the handlers of `work` in one transaction, until each item has its outcome or a `refused` reason."""
        if self._pool is None:
            raise RuntimeError(f"consumer {self.name} has no pool: bind() it first (Runtime.start does)")
        delays = backoff_delays(cap=self._backoff_cap)
        failures: Counter[int] = Counter()  # unexpected errors per item (by position in `work`; -1: no item)
        careful = False  # a savepoint per record, only after a refusal (savepoints cost round trips)
        while todo := [(n, item) for n, item in enumerate(work) if item.refused is None]:
            current = -1  # the position of the item whose code runs now; -1: none (a deferred write, the commit)
            try:
                handled: list[tuple[_Item, bool]] = []
                async with self._pool.acquire() as conn, conn.transaction():
                    scope = TransactionScope()
                    if careful:
                        for n, item in todo:
                            current = n
                            try:
                                async with conn.transaction():
                                    fresh = await self._claim(conn, [item]) == {_key(item)}
                                    if fresh:
                                        await self._run(conn, item, scope)
                                        await scope.flush(conn)  # inside the savepoint: undone with it
                            except REFUSALS as exc:
                                scope.discard()
                                item.refused = _refusal(exc)
                                continue
                            handled.append((item, fresh))
                    else:
                        fresh_keys = await self._claim(conn, [item for _, item in todo])
                        for n, item in todo:
                            current = n
                            key = _key(item)
                            fresh = key in fresh_keys
                            fresh_keys.discard(key)  # the same event twice in one batch: the second is a duplicate
                            if fresh:
                                await self._run(conn, item, scope)
                            handled.append((item, fresh))
                        # Deferred writes (the outbox rows among them), like the commit, belong to no
                        # single record, unless the batch has only one.
                        current = todo[0][0] if len(todo) == 1 else -1
                        await scope.flush(conn)
                    current = -1  # a failing commit belongs to no single record
                for item, fresh in handled:
                    item.outcome = Outcome(APPLIED if fresh else DUPLICATE)
                    if self.after_commit is not None:
                        await self._after_commit(item)
                return
            except REFUSALS as exc:
                if current >= 0 and len(todo) == 1:
                    work[current].refused = _refusal(exc)  # a batch of one: nothing else to replay
                elif careful and current < 0:
                    # Refused outside any one record (e.g. a deferred write in no savepoint): cannot be pinned.
                    raise
                careful = True  # replay at once, isolating each record
            except TRANSIENT as exc:
                self._count_failure("transient")
                delay = next(delays)
                log.warning("transient failure; retrying", consumer=self.name, error=repr(exc),
                            retry_in=round(delay, 2), records=len(todo))
                await asyncio.sleep(delay)
            except Exception as exc:  # counted against the record, retried, then dead-lettered
                self._count_failure("error")
                failures[current] += 1
                failed = work[current] if current >= 0 else None
                with failed.context(self.name) if failed is not None else message_context(consumer=self.name):
                    log.exception("handler failed", attempt=failures[current], max_attempts=self._max_attempts)
                if failures[current] >= self._max_attempts:
                    careful = True  # per-record claims and savepoints pin the failure on one record
                    if failed is not None:
                        failed.refused = f"handler failed {failures[current]} times: {type(exc).__name__}: {exc}"
                        continue
                await asyncio.sleep(next(delays))

    async def _claim(self, conn: asyncpg.Connection, items: list[_Item]) -> set[tuple[str, str]]:
        """Claim the items' events in the inbox in one statement; the (source, id) pairs seen for the first time."""
        return await inbox.claim_many(conn, self.name, [(item.event, item.record.topic, item.record.partition,
                                                         item.record.offset) for item in items
                                                        if item.event is not None])

    async def _run(self, conn: asyncpg.Connection, item: _Item, scope: TransactionScope) -> None:
        assert item.event is not None and item.route is not None
        record, event = item.record, item.event
        # The event's trace is current while its handler runs: follow-ups continue it.
        with item.context(self.name, traceparent=event.traceparent):
            ctx = HandlerContext(conn=conn, outbox=self._outbox, now=self._clock(), actor=Actor(event.source),
                                 store=self._store(conn) if self._store is not None else None,
                                 correlation_id=event.correlation_id, causation_id=event.id, scope=scope,
                                 event=event, topic=record.topic, partition=record.partition, offset=record.offset)
            await item.route.handler(item.payload, ctx)

    async def _after_commit(self, item: _Item) -> None:
        if self.after_commit is not None and item.event is not None:
            result = self.after_commit(item.event)
            if asyncio.iscoroutine(result):
                await result

    def _done(self, items: list[_Item], started: float) -> list[Outcome]:
        outcomes = [item.outcome for item in items if item.outcome is not None]
        assert len(outcomes) == len(items), "every record ends applied, duplicate or dead_lettered"
        elapsed = time.perf_counter() - started
        statuses = Counter(o.status for o in outcomes)
        for status, count in statuses.items():
            self.counts[status] = self.counts.get(status, 0) + count
        if self._metrics is not None:
            for status, count in statuses.items():
                self._metrics.handled.labels(self.name, status).inc(count)
            per_topic = Counter((item.record.topic, o.status) for item, o in zip(items, outcomes, strict=True))
            for (topic, status), count in per_topic.items():
                self._metrics.records.labels(self.name, topic, status).inc(count)
            latency = self._metrics.latency.labels(self.name)
            for _ in outcomes:
                latency.observe(elapsed)
        duration_ms = round(elapsed * 1000, 2)
        if len(items) == 1 or DEAD_LETTERED in statuses:
            # A lone record, and every record of a batch with a dead letter, gets a line of its own.
            for item, outcome in zip(items, outcomes, strict=True):
                with item.context(self.name):
                    log.info("message dead-lettered" if outcome.status == DEAD_LETTERED else "message handled",
                             outcome=outcome.status, reason=outcome.reason, duration_ms=duration_ms)
            return outcomes
        # One line per batch: at thousands of events/s a line per event costs more CPU than
        # handling the event (bench B1). The line lists every event and correlation id, so
        # `ntbctl logs CORRELATION_ID` still finds the flow.
        events = [item.event for item in items if item.event is not None]
        records = [item.record for item in items]
        log.info("messages handled", consumer=self.name, count=len(items), outcomes=dict(statuses),
                 duration_ms=duration_ms,
                 positions=sorted({f"{r.topic}/{r.partition}:{r.offset}" for r in records[:1] + records[-1:]}),
                 event_ids=[e.id for e in events],
                 correlation_ids=list(dict.fromkeys(e.correlation_id for e in events)))
        return outcomes

    def _count_consumed(self, records: list[KafkaRecord]) -> None:
        if self._metrics is None:
            return
        for topic, count in Counter(record.topic for record in records).items():
            self._metrics.consumed.labels(self.name, topic).inc(count)

    def _count_failure(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.failures.labels(self.name, kind).inc()

    async def _dead_letter(self, item: _Item, reason: str) -> Outcome:
        delays = backoff_delays(cap=self._backoff_cap)
        while True:
            try:
                await self._dead_letters.publish(item.record, reason=reason, consumer=self.name)
                return Outcome(DEAD_LETTERED, reason)
            except TRANSIENT as exc:
                # The offset is not committed until the dead letter is safely stored.
                delay = next(delays)
                with item.context(self.name):
                    log.warning("dead-letter publish failed; retrying", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)


def _key(item: _Item) -> tuple[str, str]:
    assert item.event is not None
    return item.event.source, item.event.id


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def attach(consumer: EventConsumer, bootstrap_servers: str | list[str], topics: list[str], *, batch_size: int = 1,
           **options: Any) -> Any:
    """A `Subscription` (shared.platform.subscription) feeding `consumer` from `topics`; start() it.

    Each poll takes up to `batch_size` records and handles them in one transaction
    (`EventConsumer.process_batch`); the offsets are committed once per batch, after it.
    """
    from shared.platform.subscription import Subscription

    return Subscription(consumer, bootstrap_servers=bootstrap_servers, topics=topics, batch_size=batch_size,
                        **options)
