"""The consumer loop: raw records from aiokafka to `EventConsumer`, offsets committed after.

Why a loop of our own rather than a framework subscriber: every record the broker accepts
must reach the project's code as raw key, value and headers. A framework that decodes
headers before our code runs (FastStream's Kafka parser decodes every header value as
UTF-8) loses a whole polled batch to one NULL or non-UTF-8 header, and commits past it.
Here nothing is decoded before `EventConsumer` (header names: see shared.platform.kafka_records).

Guarantees:
- Offsets are committed manually, per partition, only after the batch's transaction
  committed (and its dead letters were acked): at-least-once, never past unprocessed work.
- Order per partition holds: one batch at a time, records in offset order.
- A rebalance waits for the batch in flight, commits it, then gives the partitions up;
  a record handled but not committed (a crash) comes back and the inbox makes it a
  duplicate: never lost, never applied twice.
- Stuck detection: per assigned partition `ntb_consumer_lag` (high watermark minus the
  committed offset) and `ntb_consumer_stalled` (1 while lag > 0 and nothing committed for
  `stall_seconds`), a warning naming topic/partition/offset, and `status()` for /readyz.
- An operator can move the consumer past one record (`ntbctl consumer skip`): it is
  dead-lettered with the operator's reason, never dropped; see `EventConsumer.process_batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from shared.platform import kafka_records
from shared.platform.consumer import EventConsumer
from shared.platform.dead_letter import KafkaRecord
from shared.platform.kafka_fetch import hold_briefly_while_buffered
from shared.platform.logging import get_logger
from shared.platform.metrics import ServiceMetrics
from shared.platform.retry import backoff_delays

log = get_logger(__name__)

SKIP_REASON = "moved past by an operator ({by}): {reason}"


# How long one getmany waits for records (they end it at once); see _run.
POLL_TIMEOUT_MS = 5000


@dataclass(slots=True)
class _Partition:
    committed: int | None = None   # next offset to process (what is committed)
    highwater: int | None = None
    progressed_at: float = 0.0
    stalled: bool = False
    last_warned: float = 0.0


class _Listener(ConsumerRebalanceListener):
    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Let the batch in flight finish and commit with the generation that owns it.
        async with self._sub.busy:
            pass
        await self._sub.commit_pending()
        for tp in revoked:
            self._sub.forget(tp)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        now = time.monotonic()
        for tp in assigned:
            self._sub.partitions.setdefault((tp.topic, tp.partition), _Partition(progressed_at=now))


def to_record(raw: Any) -> KafkaRecord:
    return KafkaRecord(topic=raw.topic, partition=raw.partition, offset=raw.offset, key=raw.key, value=raw.value,
                       headers=tuple(raw.headers or ()))


class Subscription:
    def __init__(self, consumer: EventConsumer, *, bootstrap_servers: str | list[str], topics: list[str], batch_size: int = 1,
                 pool: asyncpg.Pool | None = None, metrics: ServiceMetrics | None = None,
                 stall_seconds: float = 60.0, backoff_cap: float = 30.0, fetch_busy_wait_ms: int = 50,
                 **client_options: Any) -> None:
        forbidden = {"enable_auto_commit", "group_id", "auto_offset_reset", "isolation_level"} & client_options.keys()
        if forbidden:
            raise ValueError(f"the safe delivery settings cannot be overridden: {sorted(forbidden)}")
        kafka_records.install()
        self.consumer = consumer
        self.name = consumer.name
        self.topics = list(topics)
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._pool = pool
        self._metrics = metrics
        self._stall_seconds = stall_seconds
        self._backoff_cap = backoff_cap
        self._options = client_options
        self._fetch_busy_wait_ms = fetch_busy_wait_ms
        self._client: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.busy = asyncio.Lock()
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self._pending: dict[TopicPartition, int] = {}
        self._skips: dict[tuple[str, int, int], str] = {}
        self._inflight: asyncio.Task[Any] | None = None
        self._inflight_positions: set[tuple[str, int, int]] = set()
        self._interrupted = False
        self._polling = False  # inside getmany: nothing in flight

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._client = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self.name, client_id=self.name,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self._batch_size,
            isolation_level="read_committed", **self._options,
        )
        await self._client.start()
        # A record behind another on its partition must not wait out a long-held fetch.
        hold_briefly_while_buffered(self._client, self._fetch_busy_wait_ms)
        self._client.subscribe(self.topics, listener=_Listener(self))
        self._tasks = [asyncio.create_task(self._run(), name=f"consume:{self.name}"),
                       asyncio.create_task(self._watch(), name=f"watch:{self.name}")]

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight (up to `timeout`), commit it, leave the group."""
        self._stopping = True
        run = self._tasks[0] if self._tasks else None
        if run is not None and self._polling:
            run.cancel()  # waiting for records, nothing in flight: no need to wait out the poll
        if run is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(run), timeout=timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.commit_pending()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.stop()
            self._client = None

    # --- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._client is not None
        delays = backoff_delays(cap=self._backoff_cap)
        while not self._stopping:
            # A long wait: records wake it at once, and each return wakes aiokafka's fetcher
            # too, so a short one costs an idle consumer CPU for nothing (stop() cancels it).
            self._polling = True
            try:
                polled = await self._client.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=self._batch_size)
            except (KafkaError, IllegalStateError, OSError) as exc:
                log.warning("kafka poll failed; retrying", consumer=self.name, error=repr(exc))
                await asyncio.sleep(next(delays))
                continue
            finally:
                self._polling = False
            records = [to_record(r) for _, batch in sorted(polled.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
                       for r in batch]
            if not records:
                continue
            async with self.busy:
                try:
                    await self._process(records)
                except asyncio.CancelledError:
                    raise
                except Exception:  # never lose the loop; re-read the batch later
                    first = records[0]
                    log.exception("batch failed unexpectedly; it will be read again", consumer=self.name,
                                  topic=first.topic, partition=first.partition, offset=first.offset)
                    self._rewind(records)
                    await asyncio.sleep(next(delays))
                    continue
                for record in records:
                    self._pending[TopicPartition(record.topic, record.partition)] = record.offset + 1
            await self.commit_pending()
            delays = backoff_delays(cap=self._backoff_cap)

    async def _process(self, records: list[KafkaRecord]) -> None:
        """Handle the batch; an operator's skip aimed at a record in it interrupts and re-runs it."""
        while True:
            skips = {pos: why for pos, why in self._skips.items()}
            self._inflight_positions = {(r.topic, r.partition, r.offset) for r in records}
            self._interrupted = False
            task = asyncio.create_task(self.consumer.process_batch(records, skips=skips))
            self._inflight = task
            try:
                await task
            except asyncio.CancelledError:
                if self._interrupted and not self._stopping:
                    continue  # the transaction rolled back; run it again with the skip applied
                task.cancel()
                raise
            finally:
                self._inflight = None
                self._inflight_positions = set()
            done = [pos for pos in skips if pos in {(r.topic, r.partition, r.offset) for r in records}]
            if done:
                await self._mark_skips_done(done)
            return

    def _rewind(self, records: list[KafkaRecord]) -> None:
        assert self._client is not None
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first.setdefault(tp, record.offset)
        for tp, offset in first.items():
            with contextlib.suppress(Exception):
                self._client.seek(tp, offset)

    async def commit_pending(self) -> None:
        if not self._pending or self._client is None:
            return
        offsets, self._pending = dict(self._pending), {}
        try:
            await self._client.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The partitions moved to another member: it reads them from the last commit and
            # the inbox turns what was handled here into duplicates.
            log.warning("offset commit failed; the records will be delivered again", consumer=self.name,
                        error=repr(exc))
            return
        now = time.monotonic()
        for tp, offset in offsets.items():
            part = self.partitions.setdefault((tp.topic, tp.partition), _Partition())
            if part.committed is None or offset > part.committed:
                part.committed = offset
                part.progressed_at = now

    def forget(self, tp: Any) -> None:
        self.partitions.pop((tp.topic, tp.partition), None)
        if self._metrics is not None:
            for gauge in (self._metrics.lag, self._metrics.stalled):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.name, tp.topic, str(tp.partition))

    # --- watching -----------------------------------------------------------------------

    async def _watch(self) -> None:
        # Lag and stalls are figures for minutes, not seconds: every 15 s at most (the default).
        interval = max(0.5, min(15.0, self._stall_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._measure()
                # An operator's skip aims at a record that holds the consumer up, so it can only
                # matter while records wait or a batch is in flight: an idle consumer does not ask
                # PostgreSQL for skips (it did, every 5 s per consumer).
                if self._inflight is not None or any((p.highwater or 0) > (p.committed or 0)
                                                     for p in self.partitions.values()):
                    await self._refresh_skips()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - watching must never stop the consumer
                log.warning("consumer watch failed", consumer=self.name, error=repr(exc))

    async def _measure(self) -> None:
        client = self._client
        if client is None:
            return
        assigned = list(client.assignment())
        if not assigned:
            return
        ends = await client.end_offsets(assigned)
        unknown = [tp for tp in assigned if self.partitions.get((tp.topic, tp.partition), _Partition()).committed
                   is None]
        for tp in unknown:
            committed = await client.committed(tp)
            part = self.partitions.setdefault((tp.topic, tp.partition), _Partition(progressed_at=time.monotonic()))
            if part.committed is None:
                if committed is None:  # nothing committed yet: the group starts at the earliest offset
                    committed = (await client.beginning_offsets([tp]))[tp]
                part.committed = committed
        now = time.monotonic()
        for tp in assigned:
            part = self.partitions.setdefault((tp.topic, tp.partition), _Partition(progressed_at=now))
            part.highwater = ends.get(tp)
            start = part.committed if part.committed is not None else 0
            lag = max(0, (part.highwater or 0) - start)
            if lag == 0:
                part.progressed_at = now
            stalled = lag > 0 and now - part.progressed_at >= self._stall_seconds
            if stalled and (not part.stalled or now - part.last_warned >= self._stall_seconds):
                part.last_warned = now
                log.warning("consumer stalled: no progress with records waiting", consumer=self.name,
                            topic=tp.topic, partition=tp.partition, offset=start, lag=lag,
                            stalled_for_s=round(now - part.progressed_at, 1))
            elif part.stalled and not stalled:
                log.info("consumer moving again", consumer=self.name, topic=tp.topic, partition=tp.partition,
                         offset=start)
            part.stalled = stalled
            if self._metrics is not None:
                self._metrics.lag.labels(self.name, tp.topic, str(tp.partition)).set(lag)
                self._metrics.stalled.labels(self.name, tp.topic, str(tp.partition)).set(1 if stalled else 0)

    def status(self) -> dict[str, Any]:
        """For /readyz: each assigned partition's lag and whether it is stalled (and on which offset)."""
        stalled = []
        lag = 0
        for (topic, partition), part in sorted(self.partitions.items()):
            start = part.committed or 0
            part_lag = max(0, (part.highwater or 0) - start)
            lag += part_lag
            if part.stalled:
                stalled.append({"topic": topic, "partition": partition, "offset": start, "lag": part_lag,
                                "stalled_for_s": round(time.monotonic() - part.progressed_at, 1)})
        return {"consumer": self.name, "lag": lag, "stalled": stalled}

    # --- operators' skips -----------------------------------------------------------------

    async def _refresh_skips(self) -> None:
        if self._pool is None:
            return
        rows = await self._pool.fetch(
            "SELECT topic, kafka_partition, kafka_offset, reason, requested_by FROM consumer_skips "
            "WHERE consumer = $1 AND done_at IS NULL", self.name)
        self._skips = {(r["topic"], r["kafka_partition"], r["kafka_offset"]):
                       SKIP_REASON.format(by=r["requested_by"], reason=r["reason"]) for r in rows}
        if self._inflight is not None and not self._inflight.done() and (
                self._skips.keys() & self._inflight_positions):
            log.warning("operator skip aimed at the batch in flight; re-running it", consumer=self.name)
            self._interrupted = True
            self._inflight.cancel()

    async def _mark_skips_done(self, done: list[tuple[str, int, int]]) -> None:
        if self._pool is None:
            return
        for topic, partition, offset in done:
            await self._pool.execute(
                "UPDATE consumer_skips SET done_at = now() WHERE consumer = $1 AND topic = $2 "
                "AND kafka_partition = $3 AND kafka_offset = $4", self.name, topic, partition, offset)
            self._skips.pop((topic, partition, offset), None)
