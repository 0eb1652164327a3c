"""What every benchmark needs: the stack's addresses, a private schema and topics, events, the SQL.

The framework side and the raw baselines run exactly the same SQL (the statements below and
the shared inbox/outbox statements), so a ratio measures the machinery, not the queries.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts import registry
from shared.contracts.commitments import CommitmentSubmitted, SubmitCommitment
from shared.contracts.regions import regions
from shared.contracts.topics import COMMITMENTS_EVENTS, COMMITMENTS_INBOUND, dlq
from shared.platform import inbox, migrations
from shared.platform.db import create_pool
from shared.platform.envelope import CloudEvent
from shared.platform.kafka import SAFE_PRODUCER, ensure_topics
from shared.platform.kafka_security import client_options
from shared.platform.outbox import OUTBOX_INSERT, pack_headers

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{os.environ.get('LOCAL_KAFKA_PORT', '19092')}")
DSN = os.environ.get("DATABASE_URL", f"postgresql://ntb:ntb@127.0.0.1:{os.environ.get('LOCAL_PG_PORT', '15432')}/ntb")
# Every run makes throw-away topics under its own prefix: the services it starts create them.
os.environ.setdefault("TOPICS_PROVISION", "create")
PARTITIONS = 3
SOURCE = "/bench/regional-system"

# A commitment-like aggregate: the state change every benchmark event makes.
STATE_TABLE = """
CREATE TABLE bench_commitment (
    region_code   text        NOT NULL,
    submission_id text        NOT NULL,
    commitment_id uuid        NOT NULL DEFAULT gen_random_uuid(),
    status        text        NOT NULL,
    revision      integer     NOT NULL,
    total_rp      bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, submission_id)
)
"""
UPSERT = (
    "INSERT INTO bench_commitment (region_code, submission_id, status, revision, total_rp) "
    "VALUES ($1, $2, 'submitted', 1, $3) "
    "ON CONFLICT (region_code, submission_id) DO UPDATE SET status = 'submitted', "
    "revision = bench_commitment.revision + 1, total_rp = EXCLUDED.total_rp, updated_at = now() "
    "RETURNING commitment_id, revision"
)
CLAIM_MANY = inbox.CLAIM_MANY
OUTBOX_SQL = OUTBOX_INSERT


@dataclass
class Space:
    """One benchmark's private topics and schema (unique per run: nothing collides)."""

    run_id: str
    schema: str
    prefix: str

    @property
    def topic_in(self) -> str:
        return self.prefix + COMMITMENTS_INBOUND

    @property
    def topic_out(self) -> str:
        return self.prefix + COMMITMENTS_EVENTS


def new_space(tag: str) -> Space:
    run_id = uuid.uuid4().hex[:8]
    return Space(run_id, f"bench_{tag}_{run_id}", f"bench{run_id}.")


async def prepare(space: Space) -> asyncpg.Pool:
    """Schema with the messaging tables and the aggregate table; topics with their DLQ twins."""
    pool = await create_pool(DSN, space.schema, min_size=2, max_size=4)
    sets = [*migrations.messaging(),
            migrations.Migration("bench", 1, "commitment", STATE_TABLE)]
    async with pool.acquire() as conn:
        await migrations.migrate(conn, space.schema, sets)
    await ensure_topics(BOOTSTRAP, [space.topic_in, dlq(space.topic_in), space.topic_out],
                        partitions=PARTITIONS, replication=1)
    return pool


async def drop(space: Space) -> None:
    await drop_schema_and_topics(space.schema, [space.topic_in, dlq(space.topic_in), space.topic_out])


async def drop_schema_and_topics(schema: str, topics: list[str]) -> None:
    """Remove what one benchmark run created (best effort for the topics: they are uniquely named)."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **client_options())
    await admin.start()
    try:
        await admin.delete_topics(topics)
    except Exception:  # noqa: BLE001 - best effort; topics are uniquely named anyway
        pass
    finally:
        await admin.close()


_REGIONS = sorted(regions())


def submit_event(i: int, run_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one external SubmitCommitment event, binary CloudEvents mode."""
    region = _REGIONS[i % len(_REGIONS)]
    payload = SubmitCommitment(
        region_code=region, fiscal_year=2026, budget_stage="murni", signatory_name="Sekda",
        lines=[{"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": 1000, "months": 12,
                "unit_contribution_rp": 16800, "total_rp": 201_600_000, "funding_source": "apbd_kabupaten_kota"}],
        total_workers=1000, total_rp=201_600_000, submission_id=f"{run_id}-{i}",
    )
    spec = registry.spec_for(payload)
    event = CloudEvent.new(source=SOURCE, type=spec.type, data=payload.model_dump_json().encode())
    return region.encode(), event.data, event.to_headers()


FILL_CHUNK = 5_000


async def fill_topic(topic: str, events: Iterable[tuple[bytes, bytes, list[tuple[str, bytes]]]],
                     chunk: int = FILL_CHUNK) -> int:
    """Send the events (any iterable: pass a generator) `chunk` at a time, awaiting each chunk's acks.

    Streaming keeps the runner's own memory flat in N: only one chunk of events and its
    futures are alive at a time, so the process's peak RSS is the consumer's (bench B5).
    Returns how many events were sent.
    """
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=256 * 1024,
                                **SAFE_PRODUCER, **client_options())
    await producer.start()
    sent = 0
    try:
        it = iter(events)
        while batch := list(itertools.islice(it, chunk)):
            futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in batch]
            await asyncio.gather(*futures)
            sent += len(batch)
            del batch, futures
    finally:
        await producer.stop()
    return sent


def submit_events(n: int, run_id: str) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """The N events of a B1 run, generated as they are sent (never all in memory)."""
    return (submit_event(i, run_id) for i in range(n))


def submitted_payload(cmd: dict[str, Any], commitment_id: uuid.UUID, revision: int) -> bytes:
    """The follow-up event's payload, built by hand (the raw baselines do not use pydantic)."""
    body = {k: v for k, v in cmd.items() if k != "submission_id"}
    body.update(commitment_id=str(commitment_id), revision=revision, submitted_by=SOURCE, channel="event")
    return json.dumps(body).encode()


def submitted_model(cmd: SubmitCommitment, commitment_id: uuid.UUID, revision: int) -> CommitmentSubmitted:
    return CommitmentSubmitted(**cmd.model_dump(exclude={"submission_id"}), commitment_id=commitment_id,
                               revision=revision, submitted_by=SOURCE, channel="event")


SUBMITTED_TYPE = registry.spec_for(CommitmentSubmitted).type


def raw_outbox_args(topic_out: str, key: str, payload: bytes, causation: str, correlation: str) -> tuple[Any, ...]:
    """Arguments of OUTBOX_SQL for one follow-up event, the headers built by hand."""
    event_id = str(uuid.uuid4())
    headers = [["ce_specversion", "1.0"], ["ce_id", event_id], ["ce_source", "/ntb/rakor/commitments"],
               ["ce_type", SUBMITTED_TYPE], ["content-type", "application/json"],
               ["ce_correlationid", correlation], ["ce_causationid", causation]]
    # The statement's last column, the relay's packed copy of the headers, as Outbox's writers fill it.
    return event_id, topic_out, key, headers, payload, pack_headers([(k, v.encode()) for k, v in headers])
