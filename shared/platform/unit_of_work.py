"""The unit of work every use case receives, from every entrypoint.

One transaction on one connection, the time the work happens at, who asks, and `emit`,
which writes an event to the outbox in the same transaction, correlated with what started the
work and naming it as the cause. The HTTP edge builds one per request (`http_unit_of_work`),
the consumer one per event (`consumer.HandlerContext`), the timer wheel one per timer
(`timers.TimerContext`). A use case is `async def name(uow: UnitOfWork, ...)`, never a
connection plus separate `now`, `actor` and `emit` parameters, so it runs the same against a
fake in unit tests (tests/unit/fakes.py).

The guarantees stay where they were: the inbox claim and the outbox row commit with the
change, or none of them does.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from shared.contracts.registry import EventPayload
from shared.contracts.roles import Role
from shared.platform import tracecontext
from shared.platform.envelope import CloudEvent

if TYPE_CHECKING:
    import asyncpg

    from shared.platform.auth import Principal
    from shared.platform.outbox import Outbox

Flush = Callable[["asyncpg.Connection", list[Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: an API key or page session (id = key id), or a system (id = its CloudEvent source)."""

    id: str
    role: Role | None = None          # None: the service itself (a timer)
    region_code: str | None = None    # the region a region operator acts for

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.key_id, principal.role, principal.region_code)

    @property
    def label(self) -> str:
        return f"{self.id} ({self.role.value})" if self.role is not None else self.id


SYSTEM = Actor("system")


class TransactionScope:
    """What the work of one transaction shares: a cache, and writes deferred to its end.

    On the consumer's batch path one transaction handles many events. A handler that would
    write a row per event can append it to `deferred(key, flush)` instead; `flush(conn, items)`
    then writes all of them in one statement just before the commit (a round trip per batch,
    not per event). The consumer's `emit` does the same with the events' outbox rows
    (`emitted`): they are written first, in the order emitted, so the outbox holds them before
    any row a deferred write adds, as when each was written at once. When a batch is replayed
    record by record after a rejection, each record's deferred writes are flushed inside its
    own savepoint, or dropped with it.
    """

    __slots__ = ("_deferred", "_emitted", "cache")

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self._deferred: dict[str, tuple[Flush, list[Any]]] = {}
        self._emitted: tuple[Flush, list[Any]] | None = None

    def deferred(self, key: str, flush: Flush) -> list[Any]:
        """The list of items `flush` will write before the commit (one list per key)."""
        entry = self._deferred.get(key)
        if entry is None:
            entry = self._deferred[key] = (flush, [])
        return entry[1]

    def emitted(self, write: Flush) -> list[Any]:
        """The outbox rows `write` will write before the commit, ahead of every other deferred write."""
        if self._emitted is None:
            self._emitted = (write, [])
        return self._emitted[1]

    async def flush(self, conn: asyncpg.Connection) -> None:
        while self._emitted is not None or self._deferred:  # a flush may defer more (e.g. an outbox row)
            if self._emitted is not None:
                (write, rows), self._emitted = self._emitted, None
                if rows:
                    await write(conn, rows)
            pending, self._deferred = self._deferred, {}
            for flush, items in pending.values():
                if items:
                    await flush(conn, items)

    def discard(self) -> None:
        self._deferred = {}
        self._emitted = None


class EventSink(Protocol):
    """Where `emit` writes: the service's outbox (or a fake that keeps the events in a list)."""

    async def add(self, conn: Any, payload: EventPayload, *, correlation_id: str | None = None,
                  causation_id: str | None = None) -> CloudEvent: ...


S = TypeVar("S")
StoreFactory = Callable[["asyncpg.Connection"], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitOfWork(Generic[S]):
    """`store` is the service's store bound to `conn` (built by the runtime's `store` factory):
    the use case reads and writes through it, so a fake store stands in for PostgreSQL in unit tests."""

    conn: asyncpg.Connection
    outbox: EventSink
    now: datetime
    actor: Actor
    store: S = None  # type: ignore[assignment]  # a service without a store class gets None
    correlation_id: str | None = None
    causation_id: str | None = None   # the event, request or timer that started this work
    scope: TransactionScope = field(default_factory=TransactionScope)

    async def emit(self, payload: EventPayload) -> CloudEvent:
        """Write an event in this transaction, correlated with what started the work."""
        return await self.outbox.add(self.conn, payload, correlation_id=self.correlation_id,
                                     causation_id=self.causation_id)

    @property
    def cache(self) -> dict[str, Any]:
        """A lookup every event of the transaction needs, read once (e.g. a directory)."""
        return self.scope.cache

    def deferred(self, key: str, flush: Flush) -> list[Any]:
        """Append rows here to have `flush` write them all just before the commit (see TransactionScope)."""
        return self.scope.deferred(key, flush)

    def acting_as(self, actor: Actor) -> UnitOfWork[S]:
        """The same work on behalf of someone else (an entrypoint that knows the role a sender has)."""
        return dataclasses.replace(self, actor=actor)


def request_causation() -> tuple[str | None, str | None]:
    """(correlation id, causation id) of the current HTTP request: the request's span is the cause."""
    trace = tracecontext.current()
    if trace is None:
        return None, None
    return trace.correlation_id, trace.causation_id or f"request:{trace.traceparent.span_id}"


@contextlib.asynccontextmanager
async def open_unit_of_work(pool: asyncpg.Pool, outbox: Outbox, now: datetime, actor: Actor,
                            store: StoreFactory | None = None) -> AsyncIterator[UnitOfWork[Any]]:
    """A unit of work for an HTTP request: committed when the route returns, rolled back if it raises."""
    correlation_id, causation_id = request_causation()
    async with pool.acquire() as conn, conn.transaction():
        uow: UnitOfWork[Any] = UnitOfWork(conn=conn, outbox=outbox, now=now, actor=actor,
                                          store=store(conn) if store is not None else None,
                                          correlation_id=correlation_id, causation_id=causation_id)
        yield uow
        await uow.scope.flush(conn)
