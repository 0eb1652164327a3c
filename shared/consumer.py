"""One consumer loop for every service: decode, validate, dedupe, handle, commit.

For each record:
1. Decode the CloudEvent and validate its payload against the registered model. A
   record that cannot be read (bad bytes, missing headers, unknown type, invalid
   payload) is dead-lettered with the reason and the consumer moves on.
2. In one PostgreSQL transaction: claim the event id in the inbox (a duplicate stops
   here), run the handler, write any follow-up events to the outbox.
3. Return, and only then does the subscriber commit the offset.

Transient failures (database or Kafka unreachable) retry with backoff for as long as
it takes: the record is never skipped. A handler that rejects an event for good raises
`PermanentError` and the event is dead-lettered. Any other exception is retried
`max_attempts` times and then dead-lettered, loudly, so one poison event cannot stall
its partition forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from . import inbox
from .contracts.registry import EventPayload, EventRegistry
from .dead_letter import DeadLetterPublisher, KafkaRecord
from .db import TRANSIENT_DB_ERRORS
from .envelope import CloudEvent, EnvelopeError, decode
from .kafka import subscriber_options
from .logging import get_logger, message_context
from .metrics import ServiceMetrics
from .outbox import Outbox
from .retry import backoff_delays

log = get_logger(__name__)
P = TypeVar("P", bound=EventPayload)


class PermanentError(Exception):
    """The handler rejects this event for good; it goes to the dead-letter topic."""


TRANSIENT: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, KafkaError)


Flush = Callable[[asyncpg.Connection, list[Any]], Awaitable[None]]


class TransactionScope:
    """What the handlers of one transaction share: a cache, and writes deferred to its end.

    On the batch path one transaction handles many events. A handler that would write a
    row per event can append it to `deferred(key, flush)` instead; `flush(conn, items)`
    then writes all of them in one statement just before the commit (a round trip per
    batch, not per event). When a batch is replayed record by record after a rejection,
    each record's deferred writes are flushed inside its own savepoint, or dropped with it.
    """

    __slots__ = ("cache", "_deferred")

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self._deferred: dict[str, tuple[Flush, list[Any]]] = {}

    def deferred(self, key: str, flush: Flush) -> list[Any]:
        """The list of items `flush` will write before the commit (one list per key)."""
        entry = self._deferred.get(key)
        if entry is None:
            entry = self._deferred[key] = (flush, [])
        return entry[1]

    async def flush(self, conn: asyncpg.Connection) -> None:
        while self._deferred:  # a flush may defer more (e.g. an outbox row)
            pending, self._deferred = self._deferred, {}
            for flush, items in pending.values():
                if items:
                    await flush(conn, items)

    def discard(self) -> None:
        self._deferred = {}


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler gets besides its payload: the envelope and a way to emit events."""

    conn: asyncpg.Connection
    event: CloudEvent
    topic: str
    partition: int
    offset: int
    outbox: Outbox
    # Shared by the handlers of one transaction (a whole batch on the batch path) and dropped
    # with it; a retried transaction starts with a new one.
    scope: TransactionScope = field(default_factory=TransactionScope)

    @property
    def cache(self) -> dict[str, Any]:
        """A lookup every event of the transaction needs, read once (e.g. a directory)."""
        return self.scope.cache

    def deferred(self, key: str, flush: Flush) -> list[Any]:
        """Append rows here to have `flush` write them all just before the commit (see TransactionScope)."""
        return self.scope.deferred(key, flush)

    async def emit(self, payload: EventPayload) -> CloudEvent:
        """Write a follow-up event in this transaction, correlated with the one being handled."""
        return await self.outbox.add(
            self.conn, payload, correlation_id=self.event.correlation_id, causation_id=self.event.id
        )


Handler = Callable[[P, HandlerContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # processed | duplicate | dead_lettered | skipped
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
        on_unknown_type: str = "dead_letter",
        after_commit: Callable[[CloudEvent], Awaitable[None] | None] | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        if on_unknown_type not in ("dead_letter", "skip"):
            raise ValueError("on_unknown_type must be 'dead_letter' or 'skip'")
        self.name = name
        self._pool = pool
        self._registry = registry
        self._outbox = outbox
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._backoff_cap = backoff_cap
        self._on_unknown = on_unknown_type
        self._after_commit = after_commit  # fault-injection point for tests
        self._routes: dict[str, _Route[Any]] = {}
        self.counts: dict[str, int] = {}
        self._metrics = metrics

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

    async def process(self, record: KafkaRecord) -> Outcome:
        """Handle one Kafka record to completion. Raises only when cancelled."""
        started = time.perf_counter()
        if self._metrics is not None:
            self._metrics.consumed.labels(self.name, record.topic).inc()
        with message_context(topic=record.topic, partition=record.partition, offset=record.offset,
                             consumer=self.name):
            try:
                event = decode(record.value, record.headers)
            except EnvelopeError as exc:
                return self._done(await self._dead_letter(record, f"undecodable: {exc}"), started)
            with message_context(event_id=event.id, event_type=event.type, correlation_id=event.correlation_id,
                                 traceparent=event.traceparent):
                payload, route, outcome = self._validate(event)
                if outcome is not None:
                    if outcome.status == "dead_lettered":
                        outcome = await self._dead_letter(record, outcome.reason or "")
                    return self._done(outcome, started)
                with message_context(region_code=getattr(payload, "region_code", None)):
                    return self._done(await self._handle(record, event, route, payload), started)

    def _done(self, outcome: Outcome, started: float) -> Outcome:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if self._metrics is not None:
            self._metrics.handled.labels(self.name, outcome.status).inc()
            self._metrics.latency.labels(self.name).observe(time.perf_counter() - started)
        log.info(
            "message dead-lettered" if outcome.status == "dead_lettered" else "message handled",
            outcome=outcome.status,
            reason=outcome.reason,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return outcome

    def _validate(self, event: CloudEvent) -> tuple[Any, Any, Outcome | None]:
        """The payload and route, or the outcome that ends processing here."""
        route = self._routes.get(event.type)
        if route is None:
            if event.type in self._registry or self._on_unknown == "skip":
                return None, None, Outcome("skipped", f"{self.name} does not handle {event.type}")
            return None, None, Outcome("dead_lettered", f"unknown event type {event.type!r}")
        try:
            return route.model.model_validate(event.data_json()), route, None
        except EnvelopeError as exc:
            return None, None, Outcome("dead_lettered", f"undecodable: {exc}")
        except ValidationError as exc:
            return None, None, Outcome("dead_lettered", f"invalid {event.type} payload: {_summarize(exc)}")

    async def _handle(self, record: KafkaRecord, event: CloudEvent, route: _Route[Any], payload: Any) -> Outcome:
        delays = backoff_delays(cap=self._backoff_cap)
        failures = 0
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    fresh = await inbox.claim(
                        conn, self.name, event, topic=record.topic, partition=record.partition, offset=record.offset
                    )
                    if fresh:
                        ctx = HandlerContext(conn, event, record.topic, record.partition, record.offset, self._outbox)
                        await route.handler(payload, ctx)
                        await ctx.scope.flush(conn)
                if self._after_commit is not None:
                    result = self._after_commit(event)
                    if asyncio.iscoroutine(result):
                        await result
                return Outcome("processed" if fresh else "duplicate")
            except PermanentError as exc:
                return await self._dead_letter(record, f"rejected: {exc}")
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

    async def process_batch(self, records: list[KafkaRecord]) -> list[Outcome]:
        """Handle a polled batch in ONE transaction; same guarantees as `process` per record.

        Undecodable/invalid records are dead-lettered first. The rest are claimed in the
        inbox with one statement and handled in order in one transaction. A handler's
        `PermanentError` rolls the batch back and replays it with a savepoint per record,
        so only the rejected record's effects are undone and it alone is dead-lettered.
        Transient failures retry the whole batch; an unexpected error counts against the
        record that raised it, which is dead-lettered after `max_attempts`. The offsets are
        committed by the caller after this returns, i.e. after the commit.
        """
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(records)
        work: list[tuple[int, CloudEvent, _Route[Any], Any]] = []
        if self._metrics is not None:
            per_topic: dict[str, int] = {}
            for record in records:
                per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
            for topic, count in per_topic.items():
                self._metrics.consumed.labels(self.name, topic).inc(count)
        for i, record in enumerate(records):
            try:
                event = decode(record.value, record.headers)
            except EnvelopeError as exc:
                outcomes[i] = await self._dead_letter(record, f"undecodable: {exc}")
                continue
            payload, route, outcome = self._validate(event)
            if outcome is not None:
                if outcome.status == "dead_lettered":
                    outcome = await self._dead_letter(record, outcome.reason or "")
                outcomes[i] = outcome
                continue
            work.append((i, event, route, payload))
        rejected = await self._handle_batch(records, work, outcomes)
        for i, reason in rejected.items():
            outcomes[i] = await self._dead_letter(records[i], reason)
        events = {i: event for i, event, _, _ in work}
        if len(records) == 1 or any(o is not None and o.status == "dead_lettered" for o in outcomes):
            # Dead letters (and lone records) keep their own line, exactly as on the single path.
            done: list[Outcome] = []
            for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
                assert outcome is not None
                event = events.get(i)
                with message_context(topic=record.topic, partition=record.partition, offset=record.offset,
                                     consumer=self.name, event_id=getattr(event, "id", None),
                                     event_type=getattr(event, "type", None),
                                     correlation_id=getattr(event, "correlation_id", None)):
                    done.append(self._done(outcome, started))
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
                            except PermanentError as exc:
                                scope.discard()
                                rejected[i] = f"rejected: {exc}"
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
                    outcomes[i] = Outcome("processed" if fresh else "duplicate")
                    if self._after_commit is not None:
                        result = self._after_commit(event)
                        if asyncio.iscoroutine(result):
                            await result
                return rejected
            except PermanentError:
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
            ctx = HandlerContext(conn, event, record.topic, record.partition, record.offset, self._outbox, scope)
            await route.handler(payload, ctx)

    def _count_failure(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.failures.labels(self.name, kind).inc()

    async def _dead_letter(self, record: KafkaRecord, reason: str) -> Outcome:
        delays = backoff_delays(cap=self._backoff_cap)
        while True:
            try:
                await self._dead_letters.publish(record, reason=reason, consumer=self.name)
                return Outcome("dead_lettered", reason)
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


def record_from_kafka(raw: Any) -> KafkaRecord:
    """Adapt an aiokafka ConsumerRecord."""
    return KafkaRecord(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
        value=raw.value,
        headers=tuple((k, v) for k, v in (raw.headers or ())),
    )


def attach(consumer: EventConsumer, broker: Any, topics: list[str], *, batch_size: int = 1, **options: Any) -> Any:
    """Subscribe the consumer on a FastStream broker with the safe delivery settings.

    `batch_size` > 1 polls up to that many records and handles them in one transaction
    (`EventConsumer.process_batch`); the offsets are committed once per batch, after it.
    """
    if batch_size > 1:
        subscriber = broker.subscriber(
            *topics, decoder=_raw_body, batch=True, max_records=batch_size,
            **subscriber_options(consumer.name, **options),
        )

        @subscriber
        async def on_batch(message: KafkaMessage) -> None:
            await consumer.process_batch([record_from_kafka(r) for r in message.raw_message])

        return subscriber

    subscriber = broker.subscriber(
        *topics, decoder=_raw_body, **subscriber_options(consumer.name, **options)
    )

    @subscriber
    async def on_record(message: KafkaMessage) -> None:
        # The raw record, not a FastStream-parsed body: decoding errors must become
        # dead letters, not exceptions that rewind the partition forever.
        await consumer.process(record_from_kafka(message.raw_message))

    return subscriber


async def _raw_body(message: Any) -> Any:
    # FastStream would json-decode the value before our handler runs; a malformed value
    # would then raise outside the dead-letter path and rewind the partition forever.
    return message.body
