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
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler gets besides its payload: the envelope and a way to emit events."""

    conn: asyncpg.Connection
    event: CloudEvent
    topic: str
    partition: int
    offset: int
    outbox: Outbox

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
            with message_context(event_id=event.id, event_type=event.type, correlation_id=event.correlation_id):
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


def attach(consumer: EventConsumer, broker: Any, topics: list[str], **options: Any) -> Any:
    """Subscribe the consumer on a FastStream broker with the safe delivery settings."""
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
