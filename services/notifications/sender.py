"""The sender: claims pending deliveries, sends them outside any transaction, marks the outcome.

Three kinds of task share the work. The claimer leases due rows in batches
(`delivery_batch_size`; lease_until and lease_token set, the attempt counted) into a
queue kept just long enough to feed the senders. `delivery_concurrency` senders each take
one row at a time and send it over a reused connection, with no transaction open. The
marker records outcomes in one transaction per group (whatever finished while the
previous group was being written): it locks the rows whose lease is still ours, records
sent/failed/retry and writes DeliverySent/DeliveryFailed to the outbox.

A sender that dies after sending but before marking leaves leases that run out; those
rows are sent again with the same Message-ID / Idempotency-Key (the sends finished
during one marking transaction at most). A graceful stop marks what was sent and gives
back the leases of rows not yet sent. The claimer sleeps until a committed pending row
wakes it (LISTEN/NOTIFY), polling every `delivery_poll_seconds` as the fallback (and for
retries that come due). Several replicas share the work through SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.contracts.notifications import Channel, DeliveryFailed, DeliverySent
from shared.db import listen
from shared.logging import get_logger, message_context
from shared import otel
from shared.outbox import Outbox
from shared.tracecontext import parse_traceparent
from shared.retry import backoff_delays
from shared.tasks import cancel_and_wait
from shared.timers import Clock

from . import store
from .channels import Attempt, Channels, delivery_trace
from .domain import retry_delay
from .settings import NotificationsSettings

log = get_logger(__name__)


def status_event(row: Any, *, now: datetime, reason: str | None = None) -> DeliverySent | DeliveryFailed:
    common = dict(
        delivery_id=row["delivery_id"], recipient_id=row["recipient_id"], channel=Channel(row["channel"]),
        source_event_id=row["source_event_id"], source_event_type=row["source_event_type"],
        attempts=row["attempts"], at=now,
    )
    return DeliveryFailed(**common, reason=reason) if reason is not None else DeliverySent(**common)


class Sender:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, channels: Channels, settings: NotificationsSettings,
                 *, clock: Clock, metrics: Any = None) -> None:
        self._metrics = metrics
        self._pool = pool
        self._outbox = outbox
        self._channels = channels
        self._s = settings
        self._clock = clock
        # Fault-injection point for tests: runs after a send, before its outcome is marked.
        self.after_send: Callable[[Any, Attempt], Awaitable[None] | None] | None = None
        self.counts: dict[str, int] = {}
        self._wake = asyncio.Event()  # a pending row was committed
        self._room = asyncio.Event()  # a sender took a row from the queue
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._finished: list[tuple[Any, Attempt]] = []  # sent (or failed), not yet marked
        self._finished_ready = asyncio.Event()

    def wake(self) -> None:
        """New deliveries were committed: claim now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(listen(self._pool, store.wake_channel(self._s.db_schema), self.wake,
                                            retry_seconds=self._s.delivery_poll_seconds * 4), name="sender-listen")]
        tasks += [asyncio.create_task(self._send_loop(), name=f"sender-{i}")
                  for i in range(self._s.delivery_concurrency)]
        marker = asyncio.create_task(self._mark_loop(), name="sender-marker")
        try:
            await self._claim_loop()
        finally:
            # Every task is cancelled before the first await here (a second cancellation of this
            # task, a hurried stop, must not leave one running), and again if one swallowed it.
            await cancel_and_wait(*tasks, marker)
            # A graceful stop: what was sent is marked (not sent again after a restart), and
            # rows never sent are given back at once instead of when their lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._mark_finished())
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release_queued())

    async def _claim_loop(self) -> None:
        delays = backoff_delays(cap=30)
        limit = self._s.delivery_batch_size
        while True:
            self._wake.clear()  # before claiming: a row committed from now on sets it again
            while self._queue.qsize() >= self._s.delivery_concurrency:  # enough queued: claim when it runs low
                self._room.clear()
                await self._room.wait()
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await store.claim_due(conn, self._clock(), timedelta(seconds=self._s.delivery_lease_seconds),
                                                 limit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database outage: wait, the rows stay pending
                delay = next(delays)
                log.warning("sender failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            delays = backoff_delays(cap=30)
            for row in rows:
                self._queue.put_nowait(row)
            if len(rows) >= limit:
                continue  # probably more waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._s.delivery_poll_seconds)

    async def _send_loop(self) -> None:
        while True:
            row = await self._queue.get()
            self._room.set()
            try:
                attempt = await self._send(row)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failing hook must not stop this sender; the lease runs out
                log.exception("sending failed unexpectedly; the delivery is retried when its lease runs out")
                continue
            self._finished.append((row, attempt))
            self._finished_ready.set()

    async def _send(self, row: Any) -> Attempt:
        parent = parse_traceparent(row["traceparent"]) or delivery_trace(row)
        with self._context(row), otel.span(f"send {row['channel']}", parent, kind="client", attributes={
                "ntb.delivery_id": str(row["delivery_id"]), "ntb.channel": row["channel"],
                "ntb.attempt": row["attempts"]}) as span:
            try:
                attempt = await self._channels.send(row)
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not kill the sender loop
                log.exception("channel raised")
                attempt = Attempt("transient", f"{type(exc).__name__}: {exc}")
            if span is not None:
                span.set("ntb.outcome", attempt.outcome)
                if not attempt.sent:
                    span.error(attempt.detail[:200])
            if self.after_send is not None:
                result = self.after_send(row, attempt)
                if asyncio.iscoroutine(result):
                    await result
        return attempt

    async def _mark_loop(self) -> None:
        delays = backoff_delays(cap=30)
        while True:
            await self._finished_ready.wait()
            self._finished_ready.clear()
            try:
                await self._mark_finished()
                delays = backoff_delays(cap=30)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database outage: keep the outcomes, mark them later
                delay = next(delays)
                log.warning("marking deliveries failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                self._finished_ready.set()
                await asyncio.sleep(delay)

    async def _mark_finished(self) -> None:
        """Mark everything finished so far in one transaction (the group grows while the previous one commits)."""
        done, self._finished = self._finished, []
        if not done:
            return
        try:
            await self._mark(done)
        except BaseException:
            self._finished[:0] = done  # not marked: keep them for the next try
            raise

    async def _release_queued(self) -> None:
        rows = []
        while not self._queue.empty():
            rows.append(self._queue.get_nowait())
        if rows:
            await store.release(self._pool, [(row["delivery_id"], row["lease_token"]) for row in rows])

    @staticmethod
    def _context(row: Any) -> contextlib.AbstractContextManager[None]:
        return message_context(delivery_id=str(row["delivery_id"]), event_id=row["source_event_id"],
                               event_type=row["source_event_type"], correlation_id=row["correlation_id"],
                               trace_id=delivery_trace(row).trace_id,
                               recipient_id=row["recipient_id"], channel=row["channel"])

    async def _mark(self, done: list[tuple[Any, Attempt]]) -> None:
        """Record a group of outcomes and their events (one statement, atomic)."""
        now = self._clock()
        outcomes: list[dict[str, Any]] = []
        events: list[tuple[Any, Any, str, str]] = []
        decided: list[tuple[Any, Attempt, str]] = []
        for row, attempt in done:
            # `attempts` was counted when this sender leased the row; while the lease holds it is current.
            outcome: dict[str, Any] = dict(id=row["delivery_id"], token=row["lease_token"], reason=None,
                                           error=None, next_at=None)
            opts = dict(correlation_id=row["correlation_id"], causation_id=row["source_event_id"],
                        traceparent=delivery_trace(row).header())
            if attempt.sent:
                outcome["status"] = "sent"
                events.append((row["delivery_id"], *self._outbox.build(status_event(row, now=now), **opts)))
            elif attempt.outcome == "permanent" or row["attempts"] >= self._s.delivery_max_attempts:
                reason = attempt.detail if attempt.outcome == "permanent" else (
                    f"gave up after {row['attempts']} attempts: {attempt.detail}")
                outcome.update(status="failed", reason=reason, error=reason)
                events.append((row["delivery_id"],
                               *self._outbox.build(status_event(row, now=now, reason=reason), **opts)))
            else:
                delay = retry_delay(row["attempts"], base=self._s.delivery_backoff_base_seconds,
                                    cap=self._s.delivery_backoff_max_seconds)
                outcome.update(status="pending", error=attempt.detail, next_at=now + timedelta(seconds=delay))
            outcomes.append(outcome)
            decided.append((row, attempt, "retry" if outcome["status"] == "pending" else outcome["status"]))
        async with self._pool.acquire() as conn:
            marked = await store.mark(conn, now, outcomes, events)
        for row, attempt, outcome_name in decided:  # after the commit: what is logged is true
            with self._context(row):
                if row["delivery_id"] not in marked:
                    log.warning("lease lost before marking; another sender owns the delivery")
                    continue
                self.counts[outcome_name] = self.counts.get(outcome_name, 0) + 1
                if self._metrics is not None and outcome_name != "retry":
                    self._metrics.deliveries.labels(row["channel"], outcome_name).inc()
                log_fn = log.info if outcome_name == "sent" else log.warning
                log_fn("delivery " + outcome_name, attempts=row["attempts"], detail=attempt.detail)
