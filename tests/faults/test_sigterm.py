"""SIGTERM under load: in-flight work finishes and is committed; the restart redelivers nothing."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.topics import COMMITMENTS_EVENTS, REALIZATION_INBOUND
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP, ce_ids, produce, read_all, report, wait_for
from .streams import inbox_count, realization_applied, realization_reports, unique_tag
from .test_kill9 import _at_least

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
# On the batch path (up to 100 records a transaction) the batch in flight at SIGTERM is finished before
# the service stops: with 240 reports that once left 3 unhandled. 600 leave hundreds, so the signal
# always lands mid-stream.
N = 600
SIGNAL_AT = 60


async def committed_offsets(group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def test_sigterm_under_load_commits_in_flight_work_and_restart_redelivers_nothing(
    topic_prefix, schema_for, db, processes
):
    """SIGTERM mid-stream: exit 0, committed offsets match the inbox exactly, no redelivery after restart."""
    schema, tag = schema_for("com"), unique_tag()
    topic = topic_prefix + REALIZATION_INBOUND
    svc = processes("commitments", topic_prefix, schema)
    await svc.start()
    await produce(topic, realization_reports(N, tag))
    await wait_for(lambda: _at_least(realization_applied(db, schema, tag), SIGNAL_AT), interval=0.02)
    asked = time.monotonic()
    code = await svc.terminate()
    shutdown = time.monotonic() - asked
    at_stop = await realization_applied(db, schema, tag)
    assert code == 0, svc.tail()
    assert at_stop < N, "the stream was done before SIGTERM: no fault was injected"
    # Nothing half-done: every handled record's offset is committed and its events published.
    inbox = {row["kafka_partition"]: row["next"] for row in await db.fetch(
        f'SELECT kafka_partition, max(kafka_offset) + 1 AS next FROM "{schema}".inbox GROUP BY 1')}
    committed = await committed_offsets(topic_prefix + "commitments", topic)
    assert {p: committed.get(p, 0) for p in range(3)} == {p: inbox.get(p, 0) for p in range(3)}
    unpublished = await db.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
    assert unpublished == 0

    restarted = time.monotonic()
    await svc.start()
    await wait_for(lambda: _at_least(realization_applied(db, schema, tag), N), timeout=45)
    recovery = time.monotonic() - restarted
    counts = await svc.handled()
    events = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                            until=lambda rs: len(set(ce_ids(rs, "realization.recorded.v1"))) >= N)
    recorded = ce_ids(events, "realization.recorded.v1")
    applied = await realization_applied(db, schema, tag)
    row = report("SIGTERM under load", sent=N, applied=applied, lost=N - applied,
                 duplicates=len(set(recorded)) - N, recovery_s=recovery, applied_at_stop=at_stop,
                 shutdown_s=round(shutdown, 2), redelivered_after_restart=int(counts.get("duplicate", 0)),
                 processed_after_restart=int(counts.get("applied", 0)),
                 kafka_copies=len(recorded) - len(set(recorded)))
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert row["redelivered_after_restart"] == 0  # no redelivery storm: the restart starts where it stopped
    assert row["processed_after_restart"] == N - at_stop
    assert row["kafka_copies"] == 0
    assert await inbox_count(db, schema) == N
