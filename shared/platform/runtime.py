"""The composition every service shares: pool, migrations, topics, Kafka, outbox relay, HTTP.

A service builds a `Runtime` from its settings, registers handlers on consumers and
routes on its FastAPI app, adds its own lifecycle steps as hooks (`on_start`, `on_stop`,
`background`), then calls `serve()`. Nothing connects before `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from shared.contracts import registry
from shared.contracts.topics import dlq
from shared.platform import migrations, otel, topic_plan
from shared.platform.auth import ApiKeyStore
from shared.platform.consumer import EventConsumer, attach
from shared.platform.db import create_pool
from shared.platform.dead_letter import DeadLetterPublisher
from shared.platform.http import api_router
from shared.platform.kafka import SafeProducer, make_broker
from shared.platform.kafka_security import bootstrap_list
from shared.platform.logging import get_logger
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import Outbox, OutboxRelay, backlog
from shared.platform.settings import ServiceSettings
from shared.platform.tasks import cancel_and_wait
from shared.platform.timers import Clock, TimerHandler, TimerWheel, system_clock
from shared.platform.unit_of_work import StoreFactory

log = get_logger(__name__)

# The longest a stop waits for the relay to publish what the last handlers wrote.
OUTBOX_DRAIN_SECONDS = 5.0


def source_of(service: str) -> str:
    return f"/ntb/rakor/{service}"


Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass(slots=True)
class _Background:
    """A service's long-running worker (`Runtime.background`)."""

    name: str
    factory: Callable[[Runtime], Coroutine[Any, Any, None]]
    stop: Callable[[], None] | None
    grace_seconds: float
    task: asyncio.Task[None] | None = None


class Runtime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migration_sets: Sequence[list[migrations.Migration]],
        topics_out: Sequence[str] = (),
        topics_in: Sequence[str] = (),
        clock: Clock = system_clock,
        store: StoreFactory | None = None,
    ) -> None:
        """`store(conn)` builds the service's store for each unit of work (shared.platform.unit_of_work)."""
        self.settings = settings
        self.store = store
        self._migration_sets = migration_sets
        self.topics_out = [self.topic(t) for t in topics_out]
        self.topics_in = [self.topic(t) for t in topics_in]
        self.metrics = ServiceMetrics(settings.service_name)
        self.outbox = Outbox(registry, source=source_of(settings.service_name), topic_prefix=settings.topic_prefix)
        security = settings.kafka_security
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id=settings.service_name, security=security)
        self.producer = SafeProducer(
            settings.kafka_bootstrap_servers, client_id=f"{settings.service_name}-relay", security=security
        )
        self.dead_letters = DeadLetterPublisher(self.producer)
        self._consumers: list[tuple[EventConsumer, list[str], dict[str, Any]]] = []
        self.subscriptions: list[Any] = []
        self._pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.clock = clock
        self._timer_handlers: dict[str, TimerHandler] = {}
        self.timers: TimerWheel | None = None
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._background: list[_Background] = []

    def topic(self, name: str) -> str:
        """The real topic name of a logical one (see `topic_prefix`)."""
        return self.settings.topic_prefix + name

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("runtime not started")
        return self._pool

    def timer(self, kind: str) -> Any:
        """Decorator registering the handler of a durable timer kind (see shared.platform.timers)."""

        def register(handler: TimerHandler) -> TimerHandler:
            self._timer_handlers[kind] = handler
            return handler

        return register

    def on_start(self, hook: Hook) -> Hook:
        """Run `hook(runtime)` at start, once the pool is up and the migrations ran, before any
        consumer, timer or background worker starts (e.g. seed data the handlers read)."""
        self._on_start.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """Run `hook(runtime)` at stop, after the background workers ended and while the pool is
        still open (in the reverse order of registration)."""
        self._on_stop.append(hook)
        return hook

    def background(self, name: str, factory: Callable[[Runtime], Coroutine[Any, Any, None]], *,
                   stop: Callable[[], None] | None = None, grace_seconds: float = 0.0) -> None:
        """Run `factory(runtime)` as a task for the service's life, started last. At stop, `stop()`
        asks it to finish; it has `grace_seconds` to do so before it is cancelled."""
        self._background.append(_Background(name, factory, stop, grace_seconds))

    def background_task(self, name: str) -> asyncio.Task[None] | None:
        """The running task of a background worker (after `start()`)."""
        return next((b.task for b in self._background if b.name == name), None)

    @property
    def consumers(self) -> list[EventConsumer]:
        """The declared consumers (they receive records once `start()` has subscribed them)."""
        return [consumer for consumer, _, _ in self._consumers]

    def consumer(self, topics: Sequence[str], *, name: str | None = None, **options: Any) -> EventConsumer:
        """Declare a consumer group; register its handlers (`@consumer.handles(Model)`) before `start()`,
        which gives it the pool and subscribes it to `topics` (`options`: the subscription's, e.g. batch_size)."""
        s = self.settings
        consumer = EventConsumer(
            name=name or s.topic_prefix + s.service_name, registry=registry, outbox=self.outbox,
            dead_letters=self.dead_letters, max_attempts=s.consumer_max_attempts,
            backoff_cap=s.retry_backoff_max_seconds, topic_prefix=s.topic_prefix, metrics=self.metrics,
            clock=self.clock, store=self.store,
        )
        self._consumers.append((consumer, [self.topic(t) for t in topics], options))
        return consumer

    async def start(self) -> None:
        s = self.settings
        otel.configure(s.service_name)  # off unless OTEL_* asks for it (shared.platform.otel)
        self._pool = await create_pool(
            s.database_url.get_secret_value(), s.db_schema, min_size=s.db_pool_min, max_size=s.db_pool_max
        )
        async with self._pool.acquire() as conn:
            await migrations.migrate(conn, s.db_schema, [m for group in self._migration_sets for m in group])
        for hook in self._on_start:
            await hook(self)
        topics = [*self.topics_out, *self.topics_in, *(dlq(t) for t in self.topics_in)]
        if topics:
            await self._provisioned(topics)
        self.relay = OutboxRelay(
            self._pool,
            self.producer,
            schema=s.db_schema,
            batch_size=s.outbox_batch_size,
            poll_seconds=s.outbox_poll_seconds,
            backoff_cap=s.retry_backoff_max_seconds,
            metrics=self.metrics,
        )
        self.dead_letters.pool = self._pool  # bodies too big for a dead-letter copy are kept there
        # The broker is kept for /readyz's ping; records are read by our own loop (shared.platform.subscription).
        await self.broker.start()
        for consumer, topics_in, options in self._consumers:
            consumer.bind(self._pool)
            subscription = attach(consumer, bootstrap_list(s.kafka_bootstrap_servers), topics_in, pool=self._pool,
                                  metrics=self.metrics, stall_seconds=s.consumer_stall_seconds,
                                  backoff_cap=s.retry_backoff_max_seconds,
                                  fetch_busy_wait_ms=s.consumer_fetch_busy_wait_ms,
                                  **s.kafka_security.aiokafka_options(),
                                  **({"fetch_max_wait_ms": s.consumer_fetch_max_wait_ms,
                                     "consumer_timeout_ms": s.consumer_fetcher_timeout_ms} | options))
            await subscription.start()
            self.subscriptions.append(subscription)
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self._timer_handlers:
            self.timers = TimerWheel(self._pool, self.outbox, clock=self.clock, poll_seconds=s.timer_poll_seconds,
                                     metrics=self.metrics, schema=s.db_schema, store=self.store)
            for kind, handler in self._timer_handlers.items():
                self.timers.handles(kind)(handler)
            self._tasks.append(asyncio.create_task(self.timers.run(), name="timers"))
        for worker in self._background:
            worker.task = asyncio.create_task(worker.factory(self), name=worker.name)
        log.info("service started", topics_in=self.topics_in, topics_out=self.topics_out)

    async def _provisioned(self, topics: Sequence[str]) -> None:
        s = self.settings
        if s.topics_provision == "create":
            specs = [topic_plan.TopicSpec(t, s.topic_partitions, s.topic_replication, s.topic_min_insync_replicas)
                     for t in dict.fromkeys(topics)]
            await topic_plan.apply(s.kafka_bootstrap_servers, specs, security=s.kafka_security)
            return
        try:
            await topic_plan.verify(s.kafka_bootstrap_servers, topics, replication=s.topic_replication,
                                    min_insync=s.topic_min_insync_replicas, security=s.kafka_security)
        except topic_plan.TopicsNotProvisioned as exc:
            log.error("refusing to start: topics not provisioned", problems=exc.problems)
            raise

    async def stop(self) -> None:
        await self._stop_background()
        for hook in reversed(self._on_stop):
            with contextlib.suppress(Exception):
                await hook(self)
        # Consumers first: in-flight handlers finish and commit, then nothing new arrives.
        for subscription in self.subscriptions:
            with contextlib.suppress(Exception):
                await subscription.stop()
        self.subscriptions = []
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.timers is not None:
            # The wheel fires in a transaction; cancelling it mid-way rolls that timer back.
            for task in self._tasks:
                if task.get_name() == "timers":
                    task.cancel()
        # Give the relay a moment to flush what those last handlers wrote.
        if self.relay is not None and self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain_outbox(), timeout=OUTBOX_DRAIN_SECONDS)
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self.producer.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("service stopped")

    async def _stop_background(self) -> None:
        """Each worker is asked to finish, given its grace, then cancelled if still running."""
        for worker in self._background:
            task, worker.task = worker.task, None
            if task is None:
                continue
            if worker.stop is not None and not task.done():
                worker.stop()
                await asyncio.wait({task}, timeout=worker.grace_seconds)
            await cancel_and_wait(task)

    async def _drain_outbox(self) -> None:
        assert self.relay is not None
        while await self.relay.lag() > 0:
            await asyncio.sleep(0.1)

    def health_router(self) -> APIRouter:
        router = api_router(tags=["health"])

        @router.get("/healthz", summary="The process is alive")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @router.get("/readyz", summary="PostgreSQL and Kafka answer; consumers' lag and stalls in the detail",
                    responses={503: {"description": "Not ready: `checks` says which dependency is unavailable"}})
        async def readyz(response: Response) -> dict[str, Any]:
            checks: dict[str, str] = {}
            try:
                await asyncio.wait_for(self.pool.fetchval("SELECT 1"), timeout=3)
                checks["postgres"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["postgres"] = f"unavailable: {type(exc).__name__}"
            try:
                ok = await asyncio.wait_for(self.broker.ping(timeout=3), timeout=4)
                checks["kafka"] = "ok" if ok else "unavailable"
            except Exception as exc:  # noqa: BLE001
                checks["kafka"] = f"unavailable: {type(exc).__name__}"
            ready = all(v == "ok" for v in checks.values())
            response.status_code = 200 if ready else 503
            # A stalled consumer does not make the service unready: every replica would hit the
            # same record, so 503 would take the HTTP API down with it, and a restart does not
            # help. It shows here, in ntb_consumer_stalled (the alert) and in a log line.
            consumers = [sub.status() for sub in self.subscriptions]
            stalled = any(c["stalled"] for c in consumers)
            status = ("degraded" if stalled else "ready") if ready else "not ready"
            return {"status": status, "checks": checks, "consumers": consumers}

        @router.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            body = await self.metrics_exposition()
            http = getattr(request.app.state, "http_metrics", None)  # shared.platform.http_telemetry
            return Response(body + (http.exposition() if http is not None else b""), media_type=CONTENT_TYPE_LATEST)

        return router

    async def metrics_exposition(self) -> bytes:
        """The service's metrics, the outbox backlog read now (the relay may be stuck: the query is not)."""
        if self._pool is not None:
            try:
                waiting, age, set_aside = await asyncio.wait_for(backlog(self._pool), timeout=2)
            except Exception as exc:  # noqa: BLE001 - the database is down: /readyz says so; keep the last figures
                log.warning("outbox backlog not readable for the metrics", error=type(exc).__name__)
            else:
                self.metrics.outbox_lag.set(waiting)
                self.metrics.outbox_oldest_age.set(age)
                self.metrics.outbox_set_aside.set(set_aside)
        return self.metrics.exposition()

    async def serve(self, app: FastAPI | None) -> None:
        """Run until SIGTERM/SIGINT, then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        # Everything loaded so far (modules, models, templates) lives as long as the process:
        # move it out of the collector's reach, so the full collections that busy batches
        # trigger scan only what the work allocates (a tenth of the relay's CPU in bench B3).
        gc.collect()
        gc.freeze()
        server: _QuietServer | None = None
        server_task: asyncio.Task[Any] | None = None
        if app is not None:
            app.state.api_keys = ApiKeyStore(self.pool, self.settings.api_key_pepper)
            app.include_router(self.health_router())
            config = uvicorn.Config(
                app, host=self.settings.http_host, port=self.settings.http_port,
                log_config=None, access_log=False, lifespan="off",
            )
            server = _QuietServer(config)
            server_task = asyncio.create_task(server.serve(), name="http")
            log.info("http listening", host=self.settings.http_host, port=self.settings.http_port)
        try:
            waiters = [asyncio.create_task(stop.wait())]
            if server_task is not None:
                waiters.append(server_task)
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            log.info("shutting down")
        finally:
            if server is not None and server_task is not None:
                server.should_exit = True
                server.exit_now.set()
                with contextlib.suppress(Exception):
                    await server_task
            await self.stop()


class _QuietServer(uvicorn.Server):
    """uvicorn's main loop wakes ten times a second (to refresh the Date header and to look for
    `should_exit`): a sixth of an idle service's CPU. This one wakes once a second, and at once
    when told to exit."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_now = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runtime owns SIGTERM and SIGINT (they start its graceful stop). uvicorn's serve() would
        # take them with signal.signal and raise them again once it has stopped.
        yield

    async def main_loop(self) -> None:
        while not await self.on_tick(0):  # counter 0: the Date header is refreshed on every tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_now.wait(), timeout=1.0)
