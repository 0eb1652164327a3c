"""The sender: leases due deliveries in batches, sends them outside any transaction, marks each batch.

One loop works batch by batch. A claim leases up to `delivery_batch_size` due rows in one
statement (lease_until and lease_token set, the attempt counted). `delivery_concurrency`
workers send them over reused connections (one per worker, `EmailChannel`), with no
transaction open. Outcomes are marked in one statement per group (sent, failed or retry, only
where the lease is still ours, with the DeliverySent/DeliveryFailed outbox rows): every
`MARK_EVERY` finished sends while the batch is being sent, and the rest of the batch while the
next one is already being claimed and sent. Rows of a batch that were not
started before their lease got too short to finish a send are given back. One log line per
batch at INFO ("deliveries marked", with the counts), plus one "deliveries sent" line per event
with its correlation id and recipient ids; each failure and retry has its own
warning, and the rows themselves are the audit trail.

Idle, the loop costs nothing: it sleeps until a committed pending row wakes it
(LISTEN/NOTIFY, `shared.platform.db.listen`), until the next pending row comes due (a retry's
`next_attempt_at`, or a lease that runs out), or `delivery_poll_seconds` at most.

A sender that dies after sending but before marking leaves leases that run out; those
rows are sent again with the same Message-ID / Idempotency-Key (about one marking group). A
stop (`stop()`, then the task's cancellation after `delivery_stop_grace_seconds`) starts
no new send, lets the sends in flight finish, marks every finished one, and gives back the
leases of rows never sent; only a send still in flight when the grace runs out keeps its
lease, to be retried when it runs out. The marking at the end survives repeated
cancellation (bounded by the statement timeout), so an e-mail the server accepted is not
left unmarked by a hurried stop. Several replicas share the work through SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.contracts.notifications import DeliveryFailed, DeliverySent
from shared.platform import otel
from shared.platform.db import listen
from shared.platform.logging import get_logger, message_context
from shared.platform.outbox import Outbox
from shared.platform.retry import backoff_delays
from shared.platform.smtp import SendResult
from shared.platform.tasks import cancel_and_wait
from shared.platform.timers import Clock
from shared.platform.tracecontext import parse_traceparent

from . import store
from .channels import Channels, delivery_trace
from .deliveries import Delivery
from .domain import retry_delay
from .settings import NotificationsSettings
from .store import Store

log = get_logger(__name__)
# Statements of the sender's bookkeeping (claim, mark, release) may not hold a stop for long.
STATEMENT_TIMEOUT = 10.0
MARK_EVERY = 25


def status_event(d: Delivery, *, now: datetime, reason: str | None = None) -> DeliverySent | DeliveryFailed:
    if reason is not None:
        return DeliveryFailed(delivery_id=d.delivery_id, recipient_id=d.recipient_id, channel=d.channel,
                              source_event_id=d.source_event_id, source_event_type=d.source_event_type,
                              attempts=d.attempts, at=now, reason=reason)
    return DeliverySent(delivery_id=d.delivery_id, recipient_id=d.recipient_id, channel=d.channel,
                        source_event_id=d.source_event_id, source_event_type=d.source_event_type,
                        attempts=d.attempts, at=now)


async def finish_despite_cancellation(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to its end even if the caller is cancelled meanwhile (again and again, as
    `cancel_and_wait` does); the cancellation is raised afterwards. `coro` must be bounded."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
        except Exception:  # noqa: BLE001 - reported below
            break
    if not task.cancelled() and task.exception() is not None:
        log.warning("finishing the sender's work failed", error=repr(task.exception()))
    if cancelled:
        raise asyncio.CancelledError


class Sender:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, channels: Channels, settings: NotificationsSettings,
                 *, clock: Clock, metrics: Any = None) -> None:
        self._metrics = metrics
        self._pool = pool
        self._store = Store(pool)  # each of its statements is atomic on its own
        self._outbox = outbox
        self._channels = channels
        self._s = settings
        self._clock = clock
        # Fault-injection point for tests: runs after a send, before its outcome is marked.
        self.after_send: Callable[[Delivery, SendResult], Awaitable[None] | None] | None = None
        self.counts: dict[str, int] = {}
        self._wake = asyncio.Event()  # a pending row was committed (or a stop was asked for)
        self._stopping = False
        self._unsent: deque[Delivery] = deque()  # leased, no send started
        self._finished: list[tuple[Delivery, SendResult]] = []  # sent (or failed), not yet marked
        self._workers: list[asyncio.Task[None]] = []
        self._marking: asyncio.Task[None] | None = None
        # Finished sends are marked in groups of this many while a batch is still being sent: what a
        # crash can leave sent but unmarked (to be sent again, same Message-ID) stays a small group.
        self._mark_every = min(settings.delivery_batch_size, MARK_EVERY)
        # A send may start only while its lease outlasts the slowest send (the settings check the same).
        self._send_budget = settings.delivery_lease_seconds - max(settings.smtp_timeout_seconds,
                                                                  settings.webhook_timeout_seconds)

    def wake(self) -> None:
        """New deliveries were committed: claim now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Start no new send; `run` returns once the sends in flight are finished and marked."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(listen(self._pool, store.wake_channel(self._s.db_schema), self.wake,
                                              retry_seconds=self._s.delivery_poll_seconds * 4), name="sender-listen")
        try:
            await self._loop()
        finally:
            # What was sent is marked (not sent again after a restart), rows never sent are given
            # back at once instead of when their lease runs out, even if the stop is hurried.
            await finish_despite_cancellation(self._finish(listener))

    async def _finish(self, listener: asyncio.Task[None]) -> None:
        await cancel_and_wait(listener, *self._workers)  # a send cut short keeps its lease
        if self._marking is not None:
            await cancel_and_wait(self._marking)  # its outcomes go back to _finished when cut short
        with contextlib.suppress(Exception):
            await self._mark_finished()
        with contextlib.suppress(Exception):
            await self._release_unsent()

    async def _loop(self) -> None:
        delays = backoff_delays(cap=30)
        limit = self._s.delivery_batch_size
        while not self._stopping:
            self._wake.clear()  # before claiming: a row committed from now on sets it again
            try:
                rows = await self._store.claim_due(self._clock(),
                                                   timedelta(seconds=self._s.delivery_lease_seconds), limit,
                                                   timeout=STATEMENT_TIMEOUT)
                if rows:
                    delays = backoff_delays(cap=30)
                    await self._send_batch(rows)
                    if len(rows) >= limit:
                        continue  # probably more waiting
                due = await self._store.next_due(timeout=STATEMENT_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database outage: wait, the rows stay pending
                delay = next(delays)
                log.warning("sender failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                await self._sleep(delay)
                continue
            # Nothing due now: sleep until woken, until the next row comes due, or the poll at most.
            wait = self._s.delivery_poll_seconds
            if due is not None:
                wait = min(wait, max(0.0, (due - self._clock()).total_seconds()))
            await self._sleep(wait)
        if self._marking is not None:
            await self._marking

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._wake.wait()

    async def _send_batch(self, rows: list[Delivery]) -> None:
        leased_at = time.monotonic()
        self._unsent.extend(rows)
        self._workers = [asyncio.create_task(self._work(leased_at), name=f"sender-{i}")
                         for i in range(min(self._s.delivery_concurrency, len(rows)))]
        await asyncio.gather(*self._workers)
        self._workers = []
        if self._marking is not None:
            await self._marking  # one marking at a time; it retries on its own through an outage
        self._mark_soon()  # the rest of the batch, marked while the next one is claimed and sent
        if self._unsent:  # a stop, or leases too short to start another send: free them now
            await self._release_unsent()

    async def _work(self, leased_at: float) -> None:
        while self._unsent and not self._stopping:
            if time.monotonic() - leased_at >= self._send_budget:
                return  # the rest is given back
            d = self._unsent.popleft()
            try:
                attempt = await self._send(d)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing hook must not stop the batch; the lease runs out
                with self._context(d):
                    log.exception("sending failed unexpectedly; the delivery is retried when its lease runs out")
                continue
            self._finished.append((d, attempt))
            if len(self._finished) >= self._mark_every:
                self._mark_soon()

    def _mark_soon(self) -> None:
        """Mark what finished so far in the background, unless a marking is under way (it is followed by another)."""
        if self._finished and (self._marking is None or self._marking.done()):
            self._marking = asyncio.create_task(self._mark_loop(), name="sender-marker")

    async def _send(self, d: Delivery) -> SendResult:
        parent = parse_traceparent(d.traceparent) or delivery_trace(d)
        with otel.span(f"send {d.channel}", parent, kind="client", attributes={
                "ntb.delivery_id": str(d.delivery_id), "ntb.channel": d.channel,
                "ntb.attempt": d.attempts}) as span:
            try:
                attempt = await self._channels.send(d)
            except Exception as exc:  # an adapter bug must not kill the sender loop
                with self._context(d):
                    log.exception("channel raised")
                attempt = SendResult("transient", f"{type(exc).__name__}: {exc}")
            if span is not None:
                span.set("ntb.outcome", attempt.outcome)
                if not attempt.sent:
                    span.error(attempt.detail[:200])
            if self.after_send is not None:
                result = self.after_send(d, attempt)
                if asyncio.iscoroutine(result):
                    await result
        return attempt

    async def _mark_loop(self) -> None:
        delays = backoff_delays(cap=30)
        while True:
            try:
                await self._mark_finished()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database outage: keep the outcomes, mark them later
                delay = next(delays)
                log.warning("marking deliveries failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    async def _mark_finished(self) -> None:
        """Mark everything finished so far in one statement."""
        done, self._finished = self._finished, []
        if not done:
            return
        try:
            await self._mark(done)
        except BaseException:
            self._finished[:0] = done  # not marked (or not known to be): keep them for the next try
            raise

    async def _release_unsent(self) -> None:
        rows, self._unsent = list(self._unsent), deque()
        if rows:
            try:
                await self._store.release([(d.delivery_id, d.lease_token) for d in rows if d.lease_token],
                                          timeout=STATEMENT_TIMEOUT)
            except BaseException:
                self._unsent.extendleft(reversed(rows))
                raise

    @staticmethod
    def _context(d: Delivery) -> contextlib.AbstractContextManager[None]:
        return message_context(delivery_id=str(d.delivery_id), event_id=d.source_event_id,
                               event_type=d.source_event_type, correlation_id=d.correlation_id,
                               trace_id=delivery_trace(d).trace_id,
                               recipient_id=d.recipient_id, channel=d.channel)

    async def _mark(self, done: list[tuple[Delivery, SendResult]]) -> None:
        """Record a group of outcomes and their events (one statement, atomic)."""
        now = self._clock()
        outcomes: list[dict[str, Any]] = []
        events: list[tuple[Any, Any, str, str]] = []
        decided: list[tuple[Delivery, SendResult, str]] = []
        for d, attempt in done:
            # `attempts` was counted when this sender leased the row; while the lease holds it is current.
            outcome: dict[str, Any] = dict(id=d.delivery_id, token=d.lease_token, reason=None,
                                           error=None, next_at=None)
            if attempt.sent:
                outcome["status"] = "sent"
                events.append((d.delivery_id, *self._outbox.build(
                    status_event(d, now=now), **self._event_options(d))))
            elif attempt.outcome == "permanent" or d.attempts >= self._s.delivery_max_attempts:
                reason = attempt.detail if attempt.outcome == "permanent" else (
                    f"gave up after {d.attempts} attempts: {attempt.detail}")
                outcome.update(status="failed", reason=reason, error=reason)
                events.append((d.delivery_id, *self._outbox.build(
                    status_event(d, now=now, reason=reason), **self._event_options(d))))
            else:
                delay = retry_delay(d.attempts, base=self._s.delivery_backoff_base_seconds,
                                    cap=self._s.delivery_backoff_max_seconds)
                outcome.update(status="pending", error=attempt.detail, next_at=now + timedelta(seconds=delay))
            outcomes.append(outcome)
            decided.append((d, attempt, "retry" if outcome["status"] == "pending" else outcome["status"]))
        marked = await self._store.mark(now, outcomes, events, timeout=STATEMENT_TIMEOUT)
        tally: Counter[tuple[str, str]] = Counter()
        lost = 0
        sent_by_event: dict[str, list[Delivery]] = {}
        for d, attempt, outcome_name in decided:  # after the commit: what is logged is true
            if d.delivery_id not in marked:
                lost += 1
                with self._context(d):
                    log.warning("lease lost before marking; another sender owns the delivery")
                continue
            tally[d.channel, outcome_name] += 1
            if outcome_name == "sent":
                sent_by_event.setdefault(d.source_event_id, []).append(d)
            if outcome_name != "sent":  # each failure and retry is worth its own line
                with self._context(d):
                    log.warning("delivery " + outcome_name, attempts=d.attempts, detail=attempt.detail)
        by_outcome: Counter[str] = Counter()
        for (channel, outcome_name), n in tally.items():
            by_outcome[outcome_name] += n
            if self._metrics is not None and outcome_name != "retry":
                self._metrics.deliveries.labels(channel, outcome_name).inc(n)
        for outcome_name, n in by_outcome.items():
            self.counts[outcome_name] = self.counts.get(outcome_name, 0) + n
        # One line per event sent (not per e-mail: an event is about four), carrying its correlation
        # id so `ntbctl logs <correlation id>` follows a submission to its e-mails; recipient ids
        # only, never addresses. The rows (status, attempts, sent_at, last_error) are the audit trail.
        for rows in sent_by_event.values():
            first = rows[0]
            with message_context(event_id=first.source_event_id, event_type=first.source_event_type,
                                 correlation_id=first.correlation_id, trace_id=delivery_trace(first).trace_id):
                log.info("deliveries sent", recipient_ids=sorted({r.recipient_id for r in rows}),
                         channels=sorted({r.channel for r in rows}), count=len(rows))
        # And one line per marking group with the counts.
        log.info("deliveries marked", sent=by_outcome["sent"], failed=by_outcome["failed"],
                 retry=by_outcome["retry"], lease_lost=lost)

    @staticmethod
    def _event_options(d: Delivery) -> dict[str, Any]:
        return dict(correlation_id=d.correlation_id, causation_id=d.source_event_id,
                    traceparent=delivery_trace(d).header())
