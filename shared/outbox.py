"""Transactional outbox: events written with the state change, published by a relay.

The relay publishes unpublished rows in id order and marks them. Only one relay per
schema works at a time (a transaction-scoped advisory lock), which keeps per-key order
with several replicas running. Publishing is at-least-once: a crash between the Kafka
ack and the mark republishes the same event ids, which consumers' inboxes absorb.

Per-key order also needs writers to lock the aggregate before inserting its outbox
row, so two transactions on one aggregate take ids in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import asyncpg

from .contracts.registry import EventPayload, EventRegistry
from .db import listen
from .envelope import CloudEvent
from .kafka import SafeProducer
from .logging import get_logger
from .metrics import ServiceMetrics
from .retry import backoff_delays

log = get_logger(__name__)

# The row and the relay's wake-up in one round trip. The notification is delivered only if
# the transaction commits (PostgreSQL folds a transaction's identical notifications into one).
OUTBOX_INSERT = (
    "WITH written AS (INSERT INTO outbox (event_id, topic, key, headers, payload) "
    "VALUES ($1, $2, $3, $4, $5) RETURNING 1) "
    "SELECT pg_notify(current_schema() || '_outbox', '') FROM written"
)


async def write_event(conn: asyncpg.Connection, event: CloudEvent, *, topic: str, key: str) -> None:
    """Insert an already-built CloudEvent (caller holds the business transaction)."""
    headers = [[k, v.decode()] for k, v in event.to_headers()]
    await conn.execute(OUTBOX_INSERT, event.id, topic, key, headers, event.data)


class Outbox:
    """Builds CloudEvents for payloads and writes them in the caller's transaction."""

    def __init__(self, registry: EventRegistry, source: str, topic_prefix: str = "") -> None:
        self._registry = registry
        self._source = source
        self._prefix = topic_prefix

    def build(self, payload: EventPayload, *, correlation_id: str | None = None, causation_id: str | None = None,
              event_id: str | None = None) -> tuple[CloudEvent, str, str]:
        """The CloudEvent for a payload, with its topic and key."""
        spec = self._registry.spec_for(payload)
        event = CloudEvent.new(
            source=self._source,
            type=spec.type,
            data=payload.model_dump_json().encode(),
            subject=spec.subject(payload),
            correlation_id=correlation_id,
            causation_id=causation_id,
            id=event_id,
        )
        return event, self._prefix + spec.topic, spec.key_of(payload)

    async def add_many(self, conn: asyncpg.Connection, items: list[tuple[EventPayload, dict[str, str | None]]]) -> None:
        """Several events in the caller's transaction, in order, in one pipelined round trip.

        `items` pairs each payload with its `add` keyword arguments (correlation_id, ...)."""
        if not items:
            return
        rows = []
        for payload, opts in items:
            event, topic, key = self.build(payload, **opts)
            rows.append((event.id, topic, key, [[k, v.decode()] for k, v in event.to_headers()], event.data))
        await conn.executemany(OUTBOX_INSERT, rows)

    async def add(
        self,
        conn: asyncpg.Connection,
        payload: EventPayload,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
    ) -> CloudEvent:
        event, topic, key = self.build(payload, correlation_id=correlation_id, causation_id=causation_id,
                                       event_id=event_id)
        await write_event(conn, event, topic=topic, key=key)
        return event


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: SafeProducer,
        *,
        schema: str,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        backoff_cap: float = 30.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._backoff_cap = backoff_cap
        self._wake = asyncio.Event()
        self._lock_key = int.from_bytes(hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big", signed=True)
        self.published_total = 0
        self._lag_checked_at = float("-inf")

    async def publish_batch(self) -> int:
        """Publish up to one batch. Returns how many rows were published (0 if idle or not leader)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                return 0
            rows = await conn.fetch(
                # headers as text, parsed below in one go: the jsonb codec's per-row decode cost
                # more than everything else the relay does with a batch (docs/performance.md, B3).
                "SELECT id, event_id, topic, key, headers::text AS headers, payload FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            headers = json.loads("[" + ",".join(r["headers"] for r in rows) + "]")
            sending = self._producer.send_batch(
                [
                    (r["topic"], r["key"].encode(), bytes(r["payload"]), [(k, v.encode()) for k, v in h])
                    for r, h in zip(rows, headers, strict=True)
                ]
            )
            marking = conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
            # The rows are marked while the broker acks (one wait instead of two); the marks
            # commit only after every ack, and a failed send rolls them back with the transaction.
            for outcome in await asyncio.gather(sending, marking, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
            self._log_published(rows, headers)
        self.published_total += len(rows)
        if self._metrics is not None:
            self._metrics.outbox_published.inc(len(rows))
        return len(rows)

    @staticmethod
    def _log_published(rows: list[asyncpg.Record], headers: list[list[list[str]]]) -> None:
        # One line per event costs more than publishing it (measured: bench B3), so a batch
        # gets one line listing its event and correlation ids (`ntbctl logs` still finds them).
        heads = [dict(h) for h in headers]
        if len(rows) == 1:
            log.info("event published", event_id=rows[0]["event_id"], event_type=heads[0].get("ce_type"),
                     correlation_id=heads[0].get("ce_correlationid"), topic=rows[0]["topic"], key=rows[0]["key"])
            return
        log.info("events published", count=len(rows), topics=sorted({r["topic"] for r in rows}),
                 event_ids=[r["event_id"] for r in rows],
                 correlation_ids=list(dict.fromkeys(h.get("ce_correlationid") for h in heads)))

    async def _report_lag(self) -> None:
        if self._metrics is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._lag_checked_at >= 5:
            self._lag_checked_at = now
            self._metrics.outbox_lag.set(await self.lag())

    async def lag(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")

    async def run(self) -> None:
        """Publish until cancelled; Kafka or PostgreSQL outages only delay events."""
        listener = asyncio.create_task(self._listen())
        delays = backoff_delays(cap=self._backoff_cap)
        try:
            while True:
                try:
                    published = await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure leaves rows unpublished; retry
                    delay = next(delays)
                    log.warning("outbox publish failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                    await asyncio.sleep(delay)
                    continue
                delays = backoff_delays(cap=self._backoff_cap)
                if published >= self._batch_size:
                    continue  # more waiting: no sleep
                await self._report_lag()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _listen(self) -> None:
        # LISTEN/NOTIFY lowers latency; polling stays the source of truth if it breaks.
        await listen(self._pool, f"{self._schema}_outbox", self._wake.set, retry_seconds=self._poll * 4)
