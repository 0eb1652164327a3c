"""The raw two-hop baseline of PIPELINE (bench/pipeline.py): two hand-written processes, as the
services are two. `python -m bench.rawhops raw-commitments PREFIX SCHEMA` and
`python -m bench.rawhops raw-notifications PREFIX SCHEMA SMTP_PORT`; each prints `ready` once its
consumer has its partitions, then runs until terminated.

- hop 1 (raw-commitments): aiokafka `getmany` of the commands (the same `commitment.submit` records
  the service gets, and a return command of its own), the regions' state kept in memory and written
  with one asyncpg statement per batch, the follow-up `commitment.submitted` / `commitment.returned`
  events built by hand and produced, the offsets committed;
- hop 2 (raw-notifications): aiokafka `getmany`, the service's routing, templates and MIME bytes
  (bench/rawmail.py), aiosmtplib over 4 reused connections, a DeliverySent-like record per e-mail,
  one PostgreSQL write per batch (what the bench reads to match e-mails to submissions), the
  offsets committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contracts import registry
from shared.contracts.commitments import CommitmentReturned, CommitmentSubmitted
from shared.platform.kafka import SAFE_PRODUCER
from shared.platform.kafka_security import client_options

from .harness import BOOTSTRAP, DSN

SUBMITTED = registry.spec_for(CommitmentSubmitted).type
RETURNED = registry.spec_for(CommitmentReturned).type
RAW_RETURN = "bench.raw.commitment.return.v1"  # the raw hop's own command: it has no HTTP edge
BATCH = 100  # records per getmany, as the services' consumer batches

RAW_STATE = ("CREATE TABLE raw_commitment (region_code text PRIMARY KEY, commitment_id uuid NOT NULL, "
             "status text NOT NULL, revision integer NOT NULL, total_workers bigint NOT NULL, "
             "total_rp bigint NOT NULL, updated_at timestamptz NOT NULL)")
RAW_UPSERT = ("INSERT INTO raw_commitment SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], "
              "$5::bigint[], $6::bigint[], $7::timestamptz[]) ON CONFLICT (region_code) DO UPDATE SET "
              "status = EXCLUDED.status, revision = EXCLUDED.revision, total_workers = EXCLUDED.total_workers, "
              "total_rp = EXCLUDED.total_rp, updated_at = EXCLUDED.updated_at")
RAW_SENT = ("CREATE TABLE raw_sent (delivery_id uuid PRIMARY KEY, correlation_id text, event_type text NOT NULL, "
            "sent_at timestamptz NOT NULL)")
RAW_SENT_WRITE = ("INSERT INTO raw_sent SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], "
                  "$4::timestamptz[])")


def topics_of(prefix: str) -> dict[str, str]:
    return {"commands": prefix + "commands", "events": prefix + "events", "sent": prefix + "sent"}


def headers_for(event_type: str, correlation: str | None, causation: str,
             source: str) -> tuple[str, list[tuple[str, bytes]]]:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    headers = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_source", source.encode()),
               ("ce_type", event_type.encode()), ("ce_time", now.encode()), ("content-type", b"application/json"),
               ("ce_causationid", causation.encode())]
    if correlation:
        headers.append(("ce_correlationid", correlation.encode()))
    return event_id, headers


async def _raw_consumer(topic: str, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", **client_options())
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    return consumer


async def raw_commitments_main(prefix: str, schema: str) -> None:
    """Hop 1: commands -> one write per batch -> the follow-up events, by hand."""
    topics = topics_of(prefix)
    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **SAFE_PRODUCER, **client_options())
    await producer.start()
    consumer = await _raw_consumer(topics["commands"], prefix + "raw-commitments")
    state: dict[str, dict[str, Any]] = {}
    print("ready", flush=True)
    while True:
        batch = await consumer.getmany(timeout_ms=5000, max_records=BATCH)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            continue
        now = datetime.now(UTC)
        out: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        for record in records:
            head = dict(record.headers)
            command = json.loads(record.value)
            region = command["region_code"]
            row = state.setdefault(region, {"commitment_id": str(uuid.uuid4()), "revision": 0})
            correlation = head["ce_correlationid"].decode() if "ce_correlationid" in head else None
            if head["ce_type"] == RAW_RETURN.encode():
                row["status"] = "returned"
                event_type = RETURNED
                payload = {"commitment_id": row["commitment_id"], "region_code": region, "fiscal_year": 2026,
                           "actor": "bench reviewer (disnakertrans_reviewer)", "at": now.isoformat(),
                           "total_workers": row["total_workers"], "total_rp": row["total_rp"],
                           "reasons": command["reasons"]}
            else:
                row.update(status="submitted", revision=row["revision"] + 1, total_workers=command["total_workers"],
                           total_rp=command["total_rp"])
                event_type = SUBMITTED
                payload = {k: v for k, v in command.items() if k != "submission_id"} | {
                    "commitment_id": row["commitment_id"], "revision": row["revision"],
                    "submitted_by": head["ce_source"].decode(), "channel": "event"}
            _, headers = headers_for(event_type, correlation, head["ce_id"].decode(), "/ntb/rakor/commitments")
            out.append((record.key, json.dumps(payload).encode(), headers))
        regions = list({r.key.decode() for r in records})
        await conn.execute(RAW_UPSERT, regions, [state[r]["commitment_id"] for r in regions],
                           [state[r]["status"] for r in regions], [state[r]["revision"] for r in regions],
                           [state[r]["total_workers"] for r in regions], [state[r]["total_rp"] for r in regions],
                           [now] * len(regions))
        acks = [await producer.send(topics["events"], key=k, value=v, headers=h) for k, v, h in out]
        await asyncio.gather(*acks)
        await consumer.commit()


async def raw_notifications_main(prefix: str, schema: str, smtp_port: int) -> None:
    """Hop 2: events -> routing, rendering, MIME -> aiosmtplib -> DeliverySent-like records, one write per batch."""
    from services.notifications.settings import NotificationsSettings

    from .rawmail import RawMailer
    topics = topics_of(prefix)
    settings = NotificationsSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=DSN, db_schema=schema,
                                     topic_prefix=prefix, smtp_host="127.0.0.1", smtp_port=smtp_port,
                                     smtp_starttls=False, http_port=0)
    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **SAFE_PRODUCER, **client_options())
    await producer.start()
    mailer = RawMailer(settings, pipelined=False)
    await mailer.open()
    consumer = await _raw_consumer(topics["events"], prefix + "raw-notifications")
    print("ready", flush=True)
    while True:
        batch = await consumer.getmany(timeout_ms=5000, max_records=BATCH)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            continue
        emails = [(e, record.headers) for record in records for e in mailer.emails(record)]
        await mailer.send([e for e, _ in emails])
        now = datetime.now(UTC)
        types = [dict(h)["ce_type"].decode() for _, h in emails]
        acks = [await producer.send(topics["sent"], key=e.event_id.encode(), value=json.dumps(
            {"delivery_id": str(e.delivery_id), "event_id": e.event_id, "recipient_id": e.recipient_id,
             "status": "sent"}).encode()) for e, _ in emails]
        await asyncio.gather(*acks)
        await conn.execute(RAW_SENT_WRITE, [e.delivery_id for e, _ in emails],
                           [e.correlation_id for e, _ in emails], types, [now] * len(emails))
        await consumer.commit()


if __name__ == "__main__":
    gc.collect()
    gc.freeze()  # as a service does once started (shared/platform/runtime.py)
    main = raw_commitments_main(*sys.argv[2:4]) if sys.argv[1] == "raw-commitments" else \
        raw_notifications_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
