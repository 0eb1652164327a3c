"""Durable timers kept in PostgreSQL.

A timer is (kind, key) -> due time + payload, written in the business transaction that
creates it (a meeting's reminders, a commitment's deadline). A wheel claims due timers
with `FOR UPDATE SKIP LOCKED` and runs the kind's handler in the same transaction that
marks the timer fired: with any number of replicas a timer fires exactly once, and a
crash mid-handler leaves it pending for the next attempt. Handlers usually write
outbox events, so firing and publishing stay atomic too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from shared.platform import tracecontext
from shared.platform.db import listen
from shared.platform.errors import DomainError
from shared.platform.logging import get_logger, message_context
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import Outbox
from shared.platform.retry import backoff_delays
from shared.platform.tasks import cancel_and_wait
from shared.platform.unit_of_work import SYSTEM, StoreFactory, UnitOfWork

log = get_logger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


async def schedule(
    conn: asyncpg.Connection,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    rearm: bool = False,
) -> None:
    """Create or move a timer. A fired timer is only re-armed when `rearm` is true."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    # The wheel sleeps until the next due timer: the commit wakes it (NOTIFY, folded into one
    # per transaction) so that a timer due sooner than that is not late.
    await conn.execute(
        """WITH armed AS (
             INSERT INTO timers (kind, key, due_at, payload) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, key) DO UPDATE
                SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, cancelled_at = NULL,
                    failed_at = NULL, attempts = 0, last_error = NULL,
                    fired_at = CASE WHEN $5 THEN NULL ELSE timers.fired_at END
             RETURNING 1)
           SELECT pg_notify(current_schema() || '_timers', '') FROM armed""",
        kind, key, due_at, payload or {}, rearm,
    )


async def cancel(conn: asyncpg.Connection, kind: str, key_prefix: str) -> int:
    """Cancel pending timers of a kind whose key starts with `key_prefix`. Returns how many."""
    status = await conn.execute(
        """UPDATE timers SET cancelled_at = now()
           WHERE kind = $1 AND starts_with(key, $2) AND fired_at IS NULL AND cancelled_at IS NULL""",
        kind, key_prefix,
    )
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class Timer:
    id: int
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerContext(UnitOfWork[Any]):
    """The unit of work of one due timer: the service acts (actor SYSTEM) at the wheel's `now`."""

    timer: Timer


TimerHandler = Callable[[Timer, TimerContext], Awaitable[None]]


class TimerWheel:
    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: Outbox,
        *,
        clock: Clock = system_clock,
        poll_seconds: float = 30.0,
        max_attempts: int = 5,
        metrics: ServiceMetrics | None = None,
        schema: str | None = None,
        store: StoreFactory | None = None,
    ) -> None:
        """`poll_seconds` is the longest the wheel sleeps; given the `schema`, a newly scheduled
        timer wakes it (LISTEN/NOTIFY), otherwise it looks at least that often."""
        self._schema = schema
        self._wake = asyncio.Event()
        self._metrics = metrics
        self._pool = pool
        self._outbox = outbox
        self._clock = clock
        self._store = store
        self._poll = poll_seconds
        self._max_attempts = max_attempts
        self._handlers: dict[str, TimerHandler] = {}
        self.fired_total = 0

    def handles(self, kind: str) -> Callable[[TimerHandler], TimerHandler]:
        def register(handler: TimerHandler) -> TimerHandler:
            self._handlers[kind] = handler
            return handler

        return register

    @property
    def kinds(self) -> list[str]:
        return list(self._handlers)

    async def fire_due(self) -> int:
        """Fire what is due now, one transaction per timer. Returns how many fired."""
        fired = 0
        while True:
            outcome = await self._fire_one()
            if outcome is None:
                return fired
            fired += outcome

    async def _fire_one(self) -> int | None:
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT id, kind, key, due_at, payload, attempts FROM timers
                   WHERE due_at <= $1 AND kind = ANY($2::text[])
                     AND fired_at IS NULL AND cancelled_at IS NULL AND failed_at IS NULL
                   ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
                now, list(self._handlers),
            )
            if row is None:
                return None
            timer = Timer(row["id"], row["kind"], row["key"], row["due_at"], row["payload"])
            with tracecontext.starting(f"timer {timer.kind}") as trace, \
                    message_context(timer_kind=timer.kind, timer_key=timer.key, trace_id=trace.traceparent.trace_id):
                try:
                    async with conn.transaction():  # savepoint: a failing handler leaves no trace
                        await self._handlers[timer.kind](timer, TimerContext(
                            conn=conn, outbox=self._outbox, now=now, actor=SYSTEM,
                            store=self._store(conn) if self._store is not None else None, causation_id=f"timer:{timer.id}",
                            timer=timer))
                except Exception as exc:  # noqa: BLE001 - recorded on the timer, retried later
                    attempts = row["attempts"] + 1
                    # A refusal (shared.platform.errors) is the same on every attempt: give up at once.
                    give_up = attempts >= self._max_attempts or isinstance(exc, DomainError)
                    delay = timedelta(seconds=min(300, 2**attempts))
                    await conn.execute(
                        """UPDATE timers SET attempts = $2, last_error = $3,
                               due_at = CASE WHEN $4 THEN due_at ELSE $5 END,
                               failed_at = CASE WHEN $4 THEN now() END
                           WHERE id = $1""",
                        timer.id, attempts, f"{type(exc).__name__}: {exc}"[:2000], give_up, now + delay,
                    )
                    log.error("timer handler failed", attempts=attempts, gave_up=give_up, error=repr(exc))
                    return 0
                await conn.execute("UPDATE timers SET fired_at = $2 WHERE id = $1", timer.id, now)
                log.info("timer fired", due_at=timer.due_at.isoformat())
        self.fired_total += 1
        if self._metrics is not None:
            self._metrics.timers_fired.labels(timer.kind).inc()
        return 1

    async def next_due_in(self) -> float:
        """Seconds until the next pending timer of the kinds handled here (0 if one is due; the poll if none)."""
        due = await self._pool.fetchval(
            """SELECT min(due_at) FROM timers WHERE kind = ANY($1::text[])
                 AND fired_at IS NULL AND cancelled_at IS NULL AND failed_at IS NULL""",
            list(self._handlers))
        if due is None:
            return self._poll
        wait: float = (due - self._clock()).total_seconds()
        return min(self._poll, max(0.0, wait))

    async def run(self) -> None:
        listener = None
        if self._schema is not None:
            listener = asyncio.create_task(listen(self._pool, f"{self._schema}_timers", self._wake.set,
                                                  retry_seconds=min(self._poll, 2.0)))
        delays = backoff_delays(cap=30)
        try:
            while True:
                try:
                    self._wake.clear()  # before looking: a timer scheduled from now on wakes the sleep below
                    await self.fire_due()
                    sleep = await self.next_due_in()
                    delays = backoff_delays(cap=30)
                    # Asleep until the next timer is due (at most the poll), or until a new one is
                    # scheduled: an idle wheel costs PostgreSQL nothing in between.
                    if sleep > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), timeout=sleep)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - database outage: wait and try again
                    delay = next(delays)
                    log.warning("timer wheel failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.sleep(delay)
        finally:
            await cancel_and_wait(listener)
