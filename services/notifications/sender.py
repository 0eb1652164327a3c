"""The sender: claims pending deliveries, sends them outside any transaction, marks the outcome.

Claiming leases a row (lease_until, lease_token) and counts the attempt. Sending happens
with no transaction open. Marking locks the row, checks the lease is still ours and, in
one transaction, records sent/failed/retry and writes DeliverySent/DeliveryFailed to the
outbox. A sender that dies after sending but before marking leaves a lease that runs
out; the row is sent again with the same Message-ID / Idempotency-Key (that window is
as short as one UPDATE). Several replicas share the work through SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.contracts.notifications import Channel, DeliveryFailed, DeliverySent
from shared.logging import get_logger, message_context
from shared.outbox import Outbox
from shared.retry import backoff_delays
from shared.timers import Clock

from . import store
from .channels import Attempt, Channels
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
        self.wake = asyncio.Event()
        self.counts: dict[str, int] = {}

    async def run(self) -> None:
        delays = backoff_delays(cap=30)
        while True:
            try:
                busy = await self.send_due()
                delays = backoff_delays(cap=30)
                if busy:
                    continue
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self._s.delivery_poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database outage: wait, the rows stay pending
                delay = next(delays)
                log.warning("sender failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    async def send_due(self) -> int:
        """Claim one batch and process it. Returns how many were claimed."""
        lease = timedelta(seconds=self._s.delivery_lease_seconds)
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await store.claim_due(conn, self._clock(), lease, self._s.delivery_batch_size)
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: Any) -> None:
        with message_context(delivery_id=str(row["delivery_id"]), event_id=row["source_event_id"],
                             event_type=row["source_event_type"], correlation_id=row["correlation_id"],
                             recipient_id=row["recipient_id"], channel=row["channel"]):
            try:
                attempt = await self._channels.send(row)
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not kill the sender loop
                log.exception("channel raised")
                attempt = Attempt("transient", f"{type(exc).__name__}: {exc}")
            if self.after_send is not None:
                result = self.after_send(row, attempt)
                if asyncio.iscoroutine(result):
                    await result
            await self._mark(row, attempt)

    async def _mark(self, row: Any, attempt: Attempt) -> None:
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            current = await store.lock_leased(conn, row["delivery_id"], row["lease_token"])
            if current is None:
                log.warning("lease lost before marking; another sender owns the delivery")
                return
            opts = dict(correlation_id=row["correlation_id"], causation_id=row["source_event_id"])
            if attempt.sent:
                await store.mark_sent(conn, row["delivery_id"], now)
                await self._outbox.add(conn, status_event(current, now=now), **opts)
                outcome = "sent"
            elif attempt.outcome == "permanent" or current["attempts"] >= self._s.delivery_max_attempts:
                reason = attempt.detail if attempt.outcome == "permanent" else (
                    f"gave up after {current['attempts']} attempts: {attempt.detail}")
                await store.mark_failed(conn, row["delivery_id"], now, reason)
                await self._outbox.add(conn, status_event(current, now=now, reason=reason), **opts)
                outcome = "failed"
            else:
                delay = retry_delay(current["attempts"], base=self._s.delivery_backoff_base_seconds,
                                    cap=self._s.delivery_backoff_max_seconds)
                await store.mark_retry(conn, row["delivery_id"], now + timedelta(seconds=delay), attempt.detail)
                outcome = "retry"
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self._metrics is not None and outcome != "retry":
            self._metrics.deliveries.labels(row["channel"], outcome).inc()
        log_fn = log.info if outcome == "sent" else log.warning
        log_fn("delivery " + outcome, attempts=current["attempts"], detail=attempt.detail)
