"""Transactional outbox: events written with the state change, published by a relay.

The relay takes rows in id order, publishes them and deletes them in one transaction that
commits only after every Kafka ack: every row in the table is unpublished. A transaction
takes up to `chunks_per_transaction` chunks of `batch_size` rows: while one chunk is with
Kafka, the next is read, deleted and parsed (same transaction, so its delete too waits for
every ack); a chunk is sent only once the one before it is acked. Only one relay
per schema works at a time (a transaction-scoped advisory lock), which keeps per-key order
with several replicas running. Publishing is at-least-once: a crash between the Kafka ack
and the commit republishes the same event ids, which consumers' inboxes absorb. A row
Kafka refuses for what it is (too large, malformed headers) is moved to outbox_dead with the
reason instead of holding up every event behind it.

Per-key order also needs writers to lock the aggregate before inserting its outbox
row, so two transactions on one aggregate take ids in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import asyncpg
import msgpack
from aiokafka.errors import CorruptRecordException, InvalidTopicError, MessageSizeTooLargeError, RecordListTooLargeError

from shared.contracts.registry import EventPayload, EventRegistry
from shared.platform import tracecontext
from shared.platform.db import listen
from shared.platform.envelope import CloudEvent
from shared.platform.kafka import SafeProducer
from shared.platform.logging import get_logger
from shared.platform.metrics import ServiceMetrics
from shared.platform.retry import backoff_delays
from shared.platform.tasks import cancel_and_wait

log = get_logger(__name__)

# The outbox's row format and wake-up channel, defined here only: every writer (Outbox.add,
# `ntbctl outbox requeue` through REQUEUE, a service's own SQL that writes events) uses these.
COLUMNS = "event_id, topic, key, headers, payload"
# The relay of a schema listens on "<schema>_outbox" (`channel`); a writer wakes it from inside
# its transaction with WAKE_RELAY. The notification is delivered only if the transaction
# commits (PostgreSQL folds a transaction's identical notifications into one).
_CHANNEL_SUFFIX = "_outbox"
WAKE_RELAY = f"pg_notify(current_schema() || '{_CHANNEL_SUFFIX}', '')"


def channel(schema: str) -> str:
    """The channel `WAKE_RELAY` notifies when run in `schema` (search_path), where that schema's relay listens."""
    return schema + _CHANNEL_SUFFIX


def _as_text(pairs: list[tuple[str, bytes]]) -> list[list[str]]:
    """Kafka headers as the `headers` column holds them (jsonb: [name, value] text pairs)."""
    return [[k, v.decode()] for k, v in pairs]


def pack_headers(pairs: list[tuple[str, bytes]]) -> bytes:
    """The `header_pack` column: the (name, value) pairs as Kafka sends them, packed with MessagePack."""
    return msgpack.packb(pairs, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_headers(packed: bytes) -> list[tuple[str, bytes]]:
    """`header_pack` back into (name, value) pairs, tuples as aiokafka takes them, in one C call.

    Raises ValueError for bytes that are not MessagePack or not a list. The column is written by the
    platform, but a row is data: pairs of the wrong shape or types are refused by aiokafka's own
    check before anything is queued (SafeProducer.send_batch), and the row is set aside. Checking
    each pair here in Python would cost most of what the pack saves."""
    try:
        # Text must be UTF-8 (raw=False, strict); no maps or extension types; sizes bounded.
        pairs = msgpack.unpackb(packed, use_list=False, raw=False, max_bin_len=MAX_PACK_BYTES,
                                max_str_len=MAX_PACK_BYTES, max_array_len=MAX_PACK_BYTES, max_map_len=0,
                                max_ext_len=0)
    except Exception as exc:  # msgpack's own errors are ValueErrors; anything else is malformed input too
        raise ValueError(f"header_pack is not MessagePack: {exc!r}") from exc
    if type(pairs) is not tuple:
        raise ValueError(f"header_pack is not a list of pairs but {type(pairs).__name__}")
    return list(pairs)  # aiokafka takes a list of tuples (one more C call; the pairs are not copied)


# Nothing a writer packs comes near this (a record is at most 1 MiB); it bounds what a malformed
# pack can make the relay allocate.
MAX_PACK_BYTES = 2 * 1024 * 1024
# The columns the platform's writers fill: `COLUMNS` and the relay's copy of the headers.
WRITE_COLUMNS = COLUMNS + ", header_pack"
Row = tuple[str, str, str, list[list[str]], bytes, bytes]


def row(event: CloudEvent, *, topic: str, key: str) -> Row:
    """OUTBOX_INSERT's arguments for one event, in `WRITE_COLUMNS` order."""
    pairs = event.to_headers()
    return event.id, topic, key, _as_text(pairs), event.data, pack_headers(pairs)


# The row and the relay's wake-up in one round trip.
OUTBOX_INSERT = (
    f"WITH written AS (INSERT INTO outbox ({WRITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1) "
    f"SELECT {WAKE_RELAY} FROM written"
)
# A row set aside goes back as a new outbox row (published after what is already waiting) and the
# relay is woken as by any writer; one statement, so it is never in both tables or neither.
REQUEUE = (
    f"WITH r AS (DELETE FROM outbox_dead WHERE id = $1 RETURNING {COLUMNS}), "
    f"written AS (INSERT INTO outbox ({COLUMNS}) SELECT {COLUMNS} FROM r RETURNING id) "
    f"SELECT id, {WAKE_RELAY} FROM written"
)

# One batch read and deleted in one statement, returned in id order. Deleting is the relay's
# "mark": no new row version and no index entries (PostgreSQL's share of the relay's work
# fell by about two thirds against an UPDATE ... published_at; docs/performance.md, B3).
# The ids come as an array so the delete finds its rows through the primary key: joined to a
# CTE instead, PostgreSQL chose a hash join over a scan of the whole table, per batch.
# Headers come as the writer's pack (`header_pack`); only a row without one brings its jsonb
# headers, as text, parsed per batch in one go (the jsonb codec's per-row decode cost more than
# everything else the relay does with a batch).
TAKE_BATCH = (
    "WITH taken AS (DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox ORDER BY id LIMIT $1)) "
    "RETURNING id, event_id, topic, key, header_pack, "
    "CASE WHEN header_pack IS NULL THEN headers::text END AS headers, payload, created_at) "
    "SELECT * FROM taken ORDER BY id"
)
DEAD_LETTER = (
    "INSERT INTO outbox_dead (id, event_id, topic, key, headers, payload, created_at, reason) "
    "VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)"  # headers: the text read by TAKE_BATCH
)
# Refusals caused by the record itself, never by the broker or the network: sending it again
# cannot succeed, so the row is set aside rather than holding up every event behind it.
# (aiokafka's `retriable` flag cannot decide this: a broker that is down surfaces as
# KafkaTimeoutError, which is flagged not retriable.)
RECORD_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError, CorruptRecordException,
)
# A batch failing with one of these is sent again row by row, to find the rows at fault.
_ONE_BY_ONE: tuple[type[Exception], ...] = (*RECORD_ERRORS, TypeError, ValueError, AttributeError)
# (topic, key, value, headers) as SafeProducer.send_batch takes them; not an asyncpg.Record.
Outgoing = tuple[str, bytes, bytes, list[tuple[str, bytes]]]
# How soon a relay that found another one holding the lock looks again.
FOLLOWER_POLL_SECONDS = 0.5


async def write_event(conn: asyncpg.Connection, event: CloudEvent, *, topic: str, key: str) -> None:
    """Insert an already-built CloudEvent (caller holds the business transaction)."""
    await conn.execute(OUTBOX_INSERT, *row(event, topic=topic, key=key))


# What waits, how long the oldest row has waited (the id order is the age order: PK index only),
# and what was set aside. For the metrics, read when Prometheus scrapes.
BACKLOG = (
    "SELECT (SELECT count(*) FROM outbox) AS waiting, "
    "(SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox ORDER BY id LIMIT 1) AS oldest_age, "
    "(SELECT count(*) FROM outbox_dead) AS set_aside"
)


async def backlog(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, float, int]:
    """(rows waiting, seconds the oldest has waited or 0, rows set aside) in the current schema."""
    row = await conn.fetchrow(BACKLOG)
    return row["waiting"], max(0.0, row["oldest_age"] or 0.0), row["set_aside"]


class _Chunk:
    """Rows taken by one TAKE_BATCH, their headers as (name, bytes) pairs (or, for a row whose headers
    are malformed, the exception saying why), and the records to send (None when any row's headers
    are malformed: the chunk then goes row by row)."""

    __slots__ = ("headers", "records", "rows")

    def __init__(self, rows: list[asyncpg.Record], headers: list[Any], records: list[Outgoing] | None) -> None:
        self.rows, self.headers, self.records = rows, headers, records

    @classmethod
    async def parse(cls, rows: list[asyncpg.Record]) -> _Chunk:
        """Parsed in slices, the event loop run between them: this runs while the previous chunk is
        with Kafka, and aiokafka's sender must answer each produce response promptly."""
        headers: list[Any] = []
        records: list[Outgoing] | None = []
        for start in range(0, len(rows), _PARSE_SLICE):
            if start:
                await asyncio.sleep(0)
            part = rows[start:start + _PARSE_SLICE]
            heads, well_formed = _pairs(part)
            headers += heads
            if records is not None and well_formed:
                records += [(r["topic"], r["key"].encode(), r["payload"], h) for r, h in zip(part, heads, strict=True)]
            else:
                records = None
        return cls(rows, headers, records)


def _pairs(rows: list[asyncpg.Record]) -> tuple[list[Any], bool]:
    """Each row's headers as (name, bytes) pairs, or the ValueError saying why they are malformed,
    and whether none is.

    From the pack when the row has one; the rest (requeued or hand-written rows) from their jsonb
    text, all of a slice in one parse."""
    out: list[Any] = [None] * len(rows)
    well_formed = True
    texts = []
    for i, r in enumerate(rows):
        packed = r["header_pack"]
        if packed is None:
            texts.append(i)
            continue
        try:
            out[i] = unpack_headers(packed)
        except ValueError as exc:
            out[i], well_formed = exc, False
    if texts:
        parsed = json.loads("[" + ",".join(rows[i]["headers"] for i in texts) + "]")
        for i, head in zip(texts, parsed, strict=True):
            # Checked as pairs first: a two-character string or object key would unpack as one.
            if type(head) is not list or not all(type(p) is list and len(p) == 2 for p in head):
                out[i], well_formed = ValueError("headers are not a list of [name, value] pairs"), False
                continue
            try:
                out[i] = [(k, v.encode()) for k, v in head]
            except AttributeError as exc:  # a value not text
                out[i], well_formed = ValueError(f"headers are not [name, value] text pairs: {exc!r}"), False
    return out, well_formed


_NOTHING = _Chunk([], [], [])
# Chunks taken and not yet done: the one with Kafka and the next, parsed (the rows a transaction
# holds in memory). At least 2: the loop waits for the next chunk before the current one's acks.
_CHUNKS_AHEAD = 2
# Rows parsed between two turns of the event loop (~1-3 ms of CPU).
_PARSE_SLICE = 100


async def _sent(sending: asyncio.Future[None] | None) -> bool:
    """Whether the chunk's send succeeded; False if Kafka refused a record in it for what it is
    (or it was never sent, its headers being malformed): the chunk then goes row by row."""
    if sending is None:
        return False
    try:
        await sending
    except _ONE_BY_ONE:
        return False
    return True


async def _settled(future: asyncio.Future[Any]) -> None:
    """Wait for `future` to finish, whatever its outcome (which its owner reads, or nobody)."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()  # read: an outcome nobody reads must not be logged as "never retrieved"


def _headers_text(row: asyncpg.Record, pairs: Any) -> str:
    """The row's headers as the jsonb column holds them, for outbox_dead, which must take any row: the
    text taken, or a packed row's pairs; a pack that does not read as pairs (only one written by
    hand) is kept as its hex, and so is one whose text jsonb refuses (a NUL character)."""
    if row["headers"] is not None:
        return row["headers"]  # type: ignore[no-any-return]
    try:
        text = json.dumps([[k, None if v is None else v.decode(errors="backslashreplace")] for k, v in pairs])
    except (TypeError, ValueError, AttributeError):
        text = None
    if text is None or "\\u0000" in text:
        return json.dumps([["header_pack", row["header_pack"].hex()]])
    return text


def _texts(values: Any) -> list[str | None]:
    """Header values for a log line, decoded once each (they are deduplicated first); None when absent."""
    return [v.decode(errors="replace") if v else None for v in values]


class Outbox:
    """Builds CloudEvents for payloads and writes them in the caller's transaction."""

    def __init__(self, registry: EventRegistry, source: str, topic_prefix: str = "") -> None:
        self._registry = registry
        self._source = source
        self._prefix = topic_prefix

    def build(self, payload: EventPayload, *, correlation_id: str | None = None, causation_id: str | None = None,
              event_id: str | None = None, traceparent: str | None = None) -> tuple[CloudEvent, str, str]:
        """The CloudEvent for a payload, with its topic and key.

        What is not given comes from the current trace (an HTTP request or a consumed event):
        its correlation id, what caused it, and a new span of its trace (see shared.platform.tracecontext)."""
        spec = self._registry.spec_for(payload)
        trace = tracecontext.current()
        if trace is not None:
            correlation_id = correlation_id or trace.correlation_id
            causation_id = causation_id or trace.causation_id
        event = CloudEvent.new(
            source=self._source,
            type=spec.type,
            data=payload.model_dump_json().encode(),
            subject=spec.subject(payload),
            correlation_id=correlation_id,
            causation_id=causation_id,
            id=event_id,
            traceparent=tracecontext.for_event(traceparent, spec.type),
        )
        return event, self._prefix + spec.topic, spec.key_of(payload)

    async def add_many(self, conn: asyncpg.Connection, items: list[tuple[EventPayload, dict[str, str | None]]]) -> None:
        """Several events in the caller's transaction, in order, in one statement (`write_many`).

        `items` pairs each payload with its `add` keyword arguments (correlation_id, ...)."""
        rows = []
        for payload, opts in items:
            event, topic, key = self.build(payload, **opts)
            rows.append(row(event, topic=topic, key=key))
        await self.write_many(conn, rows)

    async def add(
        self,
        conn: asyncpg.Connection,
        payload: EventPayload,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
        traceparent: str | None = None,
    ) -> CloudEvent:
        event, topic, key = self.build(payload, correlation_id=correlation_id, causation_id=causation_id,
                                       event_id=event_id, traceparent=traceparent)
        await write_event(conn, event, topic=topic, key=key)
        return event

    # Many rows (`row`'s tuples, e.g. a consumed batch's events) in order, one statement, one wake-up.
    INSERT_MANY = (
        f"WITH written AS (INSERT INTO outbox ({WRITE_COLUMNS}) SELECT e.event_id, e.topic, e.key, e.headers::jsonb, "
        "e.payload, e.header_pack FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], "
        "$6::bytea[]) WITH ORDINALITY AS e(event_id, topic, key, headers, payload, header_pack, n) ORDER BY e.n "
        "RETURNING 1) "
        f"SELECT {WAKE_RELAY} FROM (SELECT 1 FROM written LIMIT 1) AS any_row"
    )

    @staticmethod
    async def write_many(conn: asyncpg.Connection, rows: list[Row]) -> None:
        # Headers as JSON text cast in SQL: pairs in a jsonb[] parameter would be read as a 2-D array.
        if rows:
            await conn.execute(Outbox.INSERT_MANY, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                               [json.dumps(r[3]) for r in rows], [r[4] for r in rows], [r[5] for r in rows])


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: SafeProducer,
        *,
        schema: str,
        batch_size: int = 500,
        chunks_per_transaction: int = 4,
        poll_seconds: float = 30.0,
        backoff_cap: float = 30.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._chunks = max(1, chunks_per_transaction)
        self._more = False  # whether the last transaction stopped with rows still waiting
        self._poll = poll_seconds
        self._backoff_cap = backoff_cap
        self._wake = asyncio.Event()
        self._leader = True  # whether the last batch found the advisory lock free
        self._lock_key = int.from_bytes(hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big", signed=True)
        self._lag_checked_at = float("-inf")

    async def publish_batch(self) -> int:
        """Publish what waits, up to `chunks_per_transaction` chunks of `batch_size` rows in one
        transaction. Returns how many rows were published (0 if idle or not leader)."""
        async with self._pool.acquire() as conn, conn.transaction():
            self._leader = bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key))
            self._more = False
            if not self._leader:
                return 0
            published = await self._publish_chunks(conn)
        if self._metrics is not None:
            self._metrics.outbox_published.inc(published)
        return published

    async def _publish_chunks(self, conn: asyncpg.Connection) -> int:
        # While one chunk's records are with Kafka (acks=all takes round trips), PostgreSQL reads
        # and deletes the next chunks (`_take`) and their headers are parsed. Same connection,
        # same transaction: those deletes too commit only after every ack, and any failure rolls
        # back every chunk this transaction took. A chunk is sent only once the previous one's
        # acks are in, so per-key order and the refusal path are those of a single chunk.
        ready: asyncio.Queue[_Chunk] = asyncio.Queue()
        conn_free, stop = asyncio.Lock(), asyncio.Event()
        ahead = asyncio.Semaphore(_CHUNKS_AHEAD)  # chunks taken and not yet done
        taker = asyncio.ensure_future(self._take(conn, conn_free, ready, ahead, stop))
        published, sending = 0, None
        try:
            chunk = await ready.get()
            sending = self._send(chunk)
            while chunk.rows:
                following = await ready.get()
                rows, headers = chunk.rows, chunk.headers
                if not await _sent(sending):
                    async with conn_free:  # setting rows aside needs the connection
                        rows, headers = await self._one_by_one(conn, rows, headers)
                # The next chunk leaves before this one's log line is written.
                sending = self._send(following)
                ahead.release()  # this chunk is done: room for one more
                await asyncio.sleep(0)
                if rows:
                    self._log_published(rows, headers)
                published += len(rows)
                chunk = following
            await taker  # a failed take fails the transaction
        except BaseException:
            stop.set()
            ahead.release()  # a taker waiting for room wakes up to stop
            if sending is not None:
                sending.cancel()  # what was already queued may still go out: at-least-once
                await _settled(sending)
            await _settled(taker)  # its take in flight ends: the connection is free before the rollback
            raise
        return published

    async def _take(self, conn: asyncpg.Connection, conn_free: asyncio.Lock, ready: asyncio.Queue[_Chunk],
                    ahead: asyncio.Semaphore, stop: asyncio.Event) -> None:
        """Take chunks one after the other, the next one's delete running while this one is parsed, at
        most `_CHUNKS_AHEAD` not yet done; then an empty chunk (also after a failure) to end the
        publishing loop."""
        async def take() -> list[asyncpg.Record]:
            await ahead.acquire()
            if stop.is_set():
                return []
            async with conn_free:
                return await conn.fetch(TAKE_BATCH, self._batch_size)  # type: ignore[no-any-return]

        taking: asyncio.Future[list[asyncpg.Record]] | None = asyncio.ensure_future(take())
        taken = 0
        try:
            while taking is not None:
                rows = await taking
                taken += 1
                self._more = full = len(rows) == self._batch_size
                taking = asyncio.ensure_future(take()) if full and taken < self._chunks and not stop.is_set() else None
                if rows:
                    ready.put_nowait(await _Chunk.parse(rows))
        finally:
            if taking is not None:
                await _settled(taking)
            ready.put_nowait(_NOTHING)

    def _send(self, chunk: _Chunk) -> asyncio.Future[None] | None:
        """The chunk's send, started (None if there is nothing to send or its headers are malformed)."""
        if not chunk.rows or chunk.records is None:
            return None
        return asyncio.ensure_future(self._producer.send_batch(chunk.records))

    async def _one_by_one(self, conn: asyncpg.Connection, rows: list[asyncpg.Record],
                          headers: list[Any]) -> tuple[list[asyncpg.Record], list[Any]]:
        """A chunk held a record Kafka refuses: send each row alone and set aside those refused.

        Rows sent before the refusal may go out twice (same event ids; inboxes absorb them).
        The rows set aside and the rows published are deleted by the same transaction."""
        published, published_headers = [], []
        for row, head in zip(rows, headers, strict=True):
            if isinstance(head, Exception):
                await self._dead_letter(conn, row, f"malformed headers: {head!r}", head)
                continue
            record = row["topic"], row["key"].encode(), row["payload"], head
            try:
                await self._producer.send_batch([record])
            except RECORD_ERRORS as exc:
                await self._dead_letter(conn, row, repr(exc), head)
                continue
            except (TypeError, ValueError, AttributeError) as exc:  # headers aiokafka cannot encode
                await self._dead_letter(conn, row, f"malformed headers: {exc!r}", head)
                continue
            published.append(row)
            published_headers.append(head)
        return published, published_headers

    async def _dead_letter(self, conn: asyncpg.Connection, row: asyncpg.Record, reason: str, pairs: Any) -> None:
        await conn.execute(DEAD_LETTER, row["id"], row["event_id"], row["topic"], row["key"],
                           _headers_text(row, pairs), row["payload"], row["created_at"], reason[:2000])
        log.error("outbox row set aside: Kafka refuses it", event_id=row["event_id"], outbox_id=row["id"],
                  topic=row["topic"], key=row["key"], reason=reason[:500], table="outbox_dead")
        if self._metrics is not None:
            self._metrics.outbox_dead.inc()

    @staticmethod
    def _log_published(rows: list[asyncpg.Record], headers: list[Any]) -> None:
        # One line per event costs more than publishing it (measured: bench B3), so a batch
        # gets one line listing its event and correlation ids (`ntbctl logs` still finds them).
        heads = [dict(h) for h in headers]
        # The trace id is the traceparent's second field (written by Outbox.build: always well formed).
        trace_ids = _texts(dict.fromkeys((h.get("ce_traceparent") or b"")[3:35] for h in heads))
        correlation_ids = _texts(dict.fromkeys(h.get("ce_correlationid") for h in heads))
        if len(rows) == 1:
            event_type = heads[0].get("ce_type")
            log.info("event published", event_id=rows[0]["event_id"],
                     event_type=event_type.decode(errors="replace") if event_type is not None else None,
                     correlation_id=correlation_ids[0], trace_id=trace_ids[0], topic=rows[0]["topic"],
                     key=rows[0]["key"])
            return
        log.info("events published", count=len(rows), topics=sorted({r["topic"] for r in rows}),
                 event_ids=[r["event_id"] for r in rows], correlation_ids=correlation_ids, trace_ids=trace_ids)

    async def _report_lag(self) -> None:
        if self._metrics is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._lag_checked_at >= 5:
            self._lag_checked_at = now
            self._metrics.outbox_lag.set(await self.lag())

    async def lag(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM outbox"))

    async def run(self) -> None:
        """Publish until cancelled; Kafka or PostgreSQL outages only delay events."""
        listener = asyncio.create_task(self._listen())
        delays = backoff_delays(cap=self._backoff_cap)
        try:
            while True:
                # Cleared before the batch is taken, never after: a row committed while this
                # batch is being published sets it again, and the loop takes that row at once
                # instead of at the next poll.
                self._wake.clear()
                try:
                    await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure leaves rows unpublished; retry
                    delay = next(delays)
                    log.warning("outbox publish failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                    await asyncio.sleep(delay)
                    continue
                delays = backoff_delays(cap=self._backoff_cap)
                if self._more:
                    continue  # more waiting: no sleep
                await self._report_lag()
                # Idle, the relay waits for a NOTIFY (a committed row); the poll is only the
                # fallback, so an idle relay costs PostgreSQL one batch look per poll. A relay
                # that found another one holding the lock looks again soon, to take over
                # promptly if that one dies.
                timeout = self._poll if self._leader else min(self._poll, FOLLOWER_POLL_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            await cancel_and_wait(listener)

    async def _listen(self) -> None:
        # LISTEN/NOTIFY lowers latency; polling stays the source of truth if it breaks.
        await listen(self._pool, channel(self._schema), self._wake.set, retry_seconds=min(self._poll * 4, 2.0))
