"""One consumer loop for every service: decode, validate, dedupe, handle, commit.

For each record:
1. Decode the CloudEvent and validate its payload against the registered model. A
   record that cannot be read (bad bytes or headers, a type not documented for the
   topic it came on, an invalid payload, a Kafka key that is not the payload's key) is
   dead-lettered with the reason and the consumer moves on. A type documented for the
   topic that this consumer does not act on is applied as a no-op. Nothing is skipped:
   every record ends applied, duplicate or dead_lettered, counted per topic in
   `ntb_consumer_records_total`.
2. In one PostgreSQL transaction: claim the event id in the inbox (a duplicate stops
   here), run the handler, write any follow-up events to the outbox.
3. Return, and only then does the subscriber commit the offset.

Transient failures (database or Kafka unreachable) retry with backoff for as long as
it takes: the record is never skipped. A handler that rejects an event for good raises
a `DomainError` (shared.platform.errors) and the event is dead-lettered; so is one PostgreSQL refuses for its
data (SQLSTATE classes 22 and 54, check and not-null violations): retrying cannot
help. Any other exception is retried `max_attempts` times and then dead-lettered,
loudly, so one poison event cannot stall its partition forever.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.platform import inbox
from shared.contracts.registry import EventPayload, EventRegistry
from shared.platform.dead_letter import DeadLetterPublisher, KafkaRecord
from shared.platform.db import TRANSIENT_DB_ERRORS
from shared.platform.envelope import CloudEvent, EnvelopeError, decode
from shared.platform.logging import get_logger, message_context
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import Outbox
from shared.platform.retry import backoff_delays
from shared.platform.errors import DomainError, Invalid
from shared.platform.unit_of_work import Actor, StoreFactory, TransactionScope, UnitOfWork

log = get_logger(__name__)
P = TypeVar("P", bound=EventPayload)


class PermanentError(Invalid):
    """The handler rejects this event for good. Any `DomainError` does the same: the event is
    dead-lettered with the refusal's message as the reason."""


TRANSIENT: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, KafkaError)
# PostgreSQL refuses the data itself: the same record fails the same way every time.
PERMANENT_DB: tuple[type[BaseException], ...] = (
    asyncpg.DataError,                   # class 22: out of range, bad encoding, NUL, invalid text
    asyncpg.ProgramLimitExceededError,   # class 54: e.g. an index row over the btree limit
    asyncpg.CheckViolationError,
    asyncpg.NotNullViolationError,
)


def db_refusal(exc: BaseException) -> str:
    """A dead letter's reason for a PostgreSQL refusal, naming the column or constraint when known."""
    where = [f"{name} {value}" for name, value in (("column", getattr(exc, "column_name", None)),
                                                   ("constraint", getattr(exc, "constraint_name", None)),
                                                   ("table", getattr(exc, "table_name", None))) if value]
    state = getattr(exc, "sqlstate", None)
    detail = f" ({', '.join(where)})" if where else ""
    return f"database refused the data: SQLSTATE {state} {type(exc).__name__}{detail}: {str(exc)[:300]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerContext(UnitOfWork[Any]):
    """The unit of work of one consumed event, and where the event came from.

    Its actor is the event's source, its `emit` correlates follow-ups with the event and
    names it as their cause; on the batch path the events of one transaction share `scope`."""

    event: CloudEvent
    topic: str
    partition: int
    offset: int


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


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        registry: EventRegistry,
        outbox: Outbox,
        dead_letters: DeadLetterPublisher,
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
        self._after_commit = after_commit  # fault-injection point for tests
        self._routes: dict[str, _Route[Any]] = {}
        self.counts: dict[str, int] = {}
        self._metrics = metrics
        self._clock = clock
        self._store = store

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

    async def process(self, record: KafkaRecord) -> Outcome:
        """Handle one Kafka record to completion. Raises only when cancelled."""
        started = time.perf_counter()
        self._count_consumed([record])
        with message_context(topic=record.topic, partition=record.partition, offset=record.offset,
                             consumer=self.name):
            checked = self._check(record)
            if isinstance(checked, Outcome):
                if checked.status == DEAD_LETTERED:
                    checked = await self._dead_letter(record, checked.reason or "")
                return self._done(record, checked, started)
            event, route, payload = checked
            with message_context(event_id=event.id, event_type=event.type, correlation_id=event.correlation_id,
                                 traceparent=event.traceparent, region_code=getattr(payload, "region_code", None)):
                return self._done(record, await self._handle(record, event, route, payload), started)

    def _done(self, record: KafkaRecord, outcome: Outcome, started: float) -> Outcome:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if self._metrics is not None:
            self._metrics.handled.labels(self.name, outcome.status).inc()
            self._metrics.records.labels(self.name, record.topic, outcome.status).inc()
            self._metrics.latency.labels(self.name).observe(time.perf_counter() - started)
        log.info(
            "message dead-lettered" if outcome.status == DEAD_LETTERED else "message handled",
            outcome=outcome.status,
            reason=outcome.reason,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return outcome

    def _count_consumed(self, records: list[KafkaRecord]) -> None:
        if self._metrics is None:
            return
        per_topic: dict[str, int] = {}
        for record in records:
            per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
        for topic, count in per_topic.items():
            self._metrics.consumed.labels(self.name, topic).inc(count)

    def _check(self, record: KafkaRecord) -> tuple[CloudEvent, _Route[Any] | None, Any] | Outcome:
        """The event, its route (None: a documented type this consumer does not act on) and payload,
        or the outcome that ends processing here."""
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
        try:
            payload = spec.model.model_validate(event.data_json())
        except EnvelopeError as exc:
            return Outcome(DEAD_LETTERED, f"undecodable: {exc}")
        except ValidationError as exc:
            return Outcome(DEAD_LETTERED, f"invalid {event.type} payload: {_summarize(exc)}")
        expected = spec.key_of(payload).encode()
        if record.key != expected:
            shown = "no key" if record.key is None else f"key {record.key[:60]!r}"
            return Outcome(DEAD_LETTERED, f"{shown} does not match the payload: a {event.type} record is keyed "
                                          f"by {expected.decode()!r}")
        route = self._routes.get(event.type)
        if route is None:
            return event, None, payload
        return event, route, payload

    def _accepted(self, topic: str) -> list[str]:
        """The types documented for `topic` (a logical name): exactly what this consumer accepts there."""
        if topic not in self._accepted_on:
            self._accepted_on[topic] = self._registry.types_on(topic)
        return self._accepted_on[topic]

    async def _handle(self, record: KafkaRecord, event: CloudEvent, route: _Route[Any] | None,
                      payload: Any) -> Outcome:
        if route is None:
            return Outcome(APPLIED, f"{event.type} is not acted on by {self.name}")
        delays = backoff_delays(cap=self._backoff_cap)
        failures = 0
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    fresh = await inbox.claim(
                        conn, self.name, event, topic=record.topic, partition=record.partition, offset=record.offset
                    )
                    if fresh:
                        ctx = self._context(conn, record, event, TransactionScope())
                        await route.handler(payload, ctx)
                        await ctx.scope.flush(conn)
                if self._after_commit is not None:
                    result = self._after_commit(event)
                    if asyncio.iscoroutine(result):
                        await result
                return Outcome(APPLIED if fresh else DUPLICATE)
            except DomainError as exc:
                return await self._dead_letter(record, f"rejected: {exc}")
            except PERMANENT_DB as exc:
                return await self._dead_letter(record, db_refusal(exc))
            except TRANSIENT as exc:
                self._count_failure("transient")
                delay = next(delays)
                log.warning("transient failure; retrying", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - counted, retried, then dead-lettered
                failures += 1
                self._count_failure("error")
                log.exception("handler failed", attempt=failures, max_attempts=self._max_attempts)
                if failures >= self._max_attempts:
                    return await self._dead_letter(
                        record, f"handler failed {failures} times: {type(exc).__name__}: {exc}"
                    )
                await asyncio.sleep(next(delays))

    async def process_batch(self, records: list[KafkaRecord],
                            skips: dict[tuple[str, int, int], str] | None = None) -> list[Outcome]:
        """Handle a polled batch in ONE transaction; same guarantees as `process` per record.

        Undecodable/invalid records are dead-lettered first. The rest are claimed in the
        inbox with one statement and handled in order in one transaction. A handler's
        `PermanentError` (or a PostgreSQL data refusal) rolls the batch back and replays it
        with a savepoint per record, so only the rejected record's effects are undone and
        it alone is dead-lettered. Transient failures retry the whole batch; an unexpected
        error counts against the record that raised it, which is dead-lettered after
        `max_attempts`. `skips` names records an operator moved the consumer past
        ((topic, partition, offset) -> reason): they are dead-lettered with that reason.
        The offsets are committed by the caller after this returns, i.e. after the commit.
        """
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(records)
        work: list[tuple[int, CloudEvent, _Route[Any], Any]] = []
        events: dict[int, CloudEvent] = {}
        for i, record in enumerate(records):
            skip = (skips or {}).get((record.topic, record.partition, record.offset))
            checked = Outcome(DEAD_LETTERED, skip) if skip is not None else self._check(record)
            if isinstance(checked, Outcome):
                outcomes[i] = await self._dead_letter(record, checked.reason or "")
                continue
            event, route, payload = checked
            events[i] = event
            if route is None:
                outcomes[i] = Outcome(APPLIED, f"{event.type} is not acted on by {self.name}")
                continue
            work.append((i, event, route, payload))
        rejected = await self._handle_batch(records, work, outcomes)
        for i, reason in rejected.items():
            outcomes[i] = await self._dead_letter(records[i], reason)
        # Counted once the batch is done: a batch re-run (an operator's skip) is consumed once.
        self._count_consumed(records)
        if len(records) == 1 or any(o is not None and o.status == DEAD_LETTERED for o in outcomes):
            # Dead letters (and lone records) keep their own line, exactly as on the single path.
            done: list[Outcome] = []
            for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
                assert outcome is not None
                event = events.get(i)
                with message_context(topic=record.topic, partition=record.partition, offset=record.offset,
                                     consumer=self.name, event_id=getattr(event, "id", None),
                                     event_type=getattr(event, "type", None),
                                     correlation_id=getattr(event, "correlation_id", None)):
                    done.append(self._done(record, outcome, started))
            return done
        return self._done_batch(records, [o for o in outcomes if o is not None], events, started)

    def _done_batch(self, records: list[KafkaRecord], outcomes: list[Outcome], events: dict[int, CloudEvent],
                    started: float) -> list[Outcome]:
        # One line per batch: at thousands of events/s a line per event costs more CPU than
        # handling the event (bench B1). The line lists every event and correlation id, so
        # `ntbctl logs CORRELATION_ID` still finds the flow.
        elapsed = time.perf_counter() - started
        statuses: dict[str, int] = {}
        for outcome in outcomes:
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        for status, count in statuses.items():
            self.counts[status] = self.counts.get(status, 0) + count
            if self._metrics is not None:
                self._metrics.handled.labels(self.name, status).inc(count)
        if self._metrics is not None:
            per_topic: dict[tuple[str, str], int] = {}
            for record, outcome in zip(records, outcomes, strict=True):
                per_topic[(record.topic, outcome.status)] = per_topic.get((record.topic, outcome.status), 0) + 1
            for (topic, status), count in per_topic.items():
                self._metrics.records.labels(self.name, topic, status).inc(count)
        if self._metrics is not None:
            latency = self._metrics.latency.labels(self.name)
            for _ in outcomes:
                latency.observe(elapsed)
        log.info("messages handled", consumer=self.name, count=len(records), outcomes=statuses,
                 duration_ms=round(elapsed * 1000, 2),
                 positions=sorted({f"{r.topic}/{r.partition}:{r.offset}" for r in records[:1] + records[-1:]}),
                 event_ids=[e.id for e in events.values()],
                 correlation_ids=list(dict.fromkeys(e.correlation_id for e in events.values())))
        return outcomes

    async def _handle_batch(
        self, records: list[KafkaRecord], work: list[tuple[int, CloudEvent, _Route[Any], Any]],
        outcomes: list[Outcome | None],
    ) -> dict[int, str]:
        """Run the valid records' handlers in one transaction; returns the rejected ones with reasons."""
        rejected: dict[int, str] = {}
        if not work:
            return rejected
        delays = backoff_delays(cap=self._backoff_cap)
        failures: dict[int, int] = {}
        careful = False  # a savepoint per record, only after a rejection (savepoints cost round trips)
        while True:
            current = -1
            try:
                handled: list[tuple[int, CloudEvent, bool]] = []
                async with self._pool.acquire() as conn, conn.transaction():
                    scope = TransactionScope()
                    todo = [w for w in work if w[0] not in rejected]
                    if careful:
                        for i, event, route, payload in todo:
                            current = i
                            record = records[i]
                            try:
                                async with conn.transaction():
                                    fresh = await inbox.claim(conn, self.name, event, topic=record.topic,
                                                              partition=record.partition, offset=record.offset)
                                    if fresh:
                                        await self._run(conn, record, event, route, payload, scope)
                                        await scope.flush(conn)  # inside the savepoint: undone with it
                            except DomainError as exc:
                                scope.discard()
                                rejected[i] = f"rejected: {exc}"
                                continue
                            except PERMANENT_DB as exc:
                                scope.discard()
                                rejected[i] = db_refusal(exc)
                                continue
                            handled.append((i, event, fresh))
                    else:
                        fresh_ids = await inbox.claim_many(
                            conn, self.name,
                            [(e, records[i].topic, records[i].partition, records[i].offset) for i, e, _, _ in todo],
                        )
                        for i, event, route, payload in todo:
                            current = i
                            key = (event.source, event.id)
                            fresh = key in fresh_ids
                            fresh_ids.discard(key)  # the same event twice in one batch: the second is a duplicate
                            if fresh:
                                await self._run(conn, records[i], event, route, payload, scope)
                            handled.append((i, event, fresh))
                        current = -1  # deferred writes, like the commit, belong to no single record
                        await scope.flush(conn)
                    current = -1  # a failing commit belongs to no single record
                for i, event, fresh in handled:
                    outcomes[i] = Outcome(APPLIED if fresh else DUPLICATE)
                    if self._after_commit is not None:
                        result = self._after_commit(event)
                        if asyncio.iscoroutine(result):
                            await result
                return rejected
            except (DomainError, *PERMANENT_DB):
                if careful and current < 0:
                    # Refused outside any one record (e.g. a deferred write in no savepoint): cannot be pinned.
                    raise
                careful = True  # replay at once, isolating each record
            except TRANSIENT as exc:
                self._count_failure("transient")
                delay = next(delays)
                log.warning("transient failure; retrying batch", error=repr(exc), retry_in=round(delay, 2),
                            records=len(work))
                await asyncio.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - counted against the record, retried, then dead-lettered
                self._count_failure("error")
                failures[current] = failures.get(current, 0) + 1
                record = records[current] if current >= 0 else None
                with message_context(topic=getattr(record, "topic", None), partition=getattr(record, "partition", None),
                                     offset=getattr(record, "offset", None), consumer=self.name):
                    log.exception("handler failed", attempt=failures[current], max_attempts=self._max_attempts)
                if failures[current] >= self._max_attempts:
                    careful = True  # per-record claims and savepoints pin the failure on one record
                    if current >= 0:
                        rejected[current] = f"handler failed {failures[current]} times: {type(exc).__name__}: {exc}"
                        continue
                await asyncio.sleep(next(delays))

    async def _run(self, conn: asyncpg.Connection, record: KafkaRecord, event: CloudEvent, route: _Route[Any],
                   payload: Any, scope: TransactionScope) -> None:
        with message_context(topic=record.topic, partition=record.partition, offset=record.offset,
                             consumer=self.name, event_id=event.id, event_type=event.type,
                             correlation_id=event.correlation_id, traceparent=event.traceparent,
                             region_code=getattr(payload, "region_code", None)):
            ctx = self._context(conn, record, event, scope)
            await route.handler(payload, ctx)

    def _context(self, conn: asyncpg.Connection, record: KafkaRecord, event: CloudEvent,
                 scope: TransactionScope) -> HandlerContext:
        return HandlerContext(conn=conn, outbox=self._outbox, now=self._clock(), actor=Actor(event.source),
                              store=self._store(conn) if self._store is not None else None,
                              correlation_id=event.correlation_id, causation_id=event.id, scope=scope,
                              event=event, topic=record.topic, partition=record.partition, offset=record.offset)

    def _count_failure(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.failures.labels(self.name, kind).inc()

    async def _dead_letter(self, record: KafkaRecord, reason: str) -> Outcome:
        delays = backoff_delays(cap=self._backoff_cap)
        while True:
            try:
                await self._dead_letters.publish(record, reason=reason, consumer=self.name)
                return Outcome(DEAD_LETTERED, reason)
            except TRANSIENT as exc:
                # The offset is not committed until the dead letter is safely stored.
                delay = next(delays)
                log.warning("dead-letter publish failed; retrying", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def attach(consumer: EventConsumer, bootstrap_servers: str | list[str], topics: list[str], *, batch_size: int = 1,
           **options: Any) -> Any:
    """A `Subscription` (shared.platform.subscription) feeding `consumer` from `topics`; start() it.

    `batch_size` > 1 polls up to that many records and handles them in one transaction
    (`EventConsumer.process_batch`); the offsets are committed once per batch, after it.
    """
    from shared.platform.subscription import Subscription

    return Subscription(consumer, bootstrap_servers=bootstrap_servers, topics=topics, batch_size=batch_size,
                        **options)
