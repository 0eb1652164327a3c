"""Two replicas in one consumer group, a rebalance mid-load, then one replica killed: every effect once."""

from __future__ import annotations

import time

import pytest

from shared.contracts.topics import COMMITMENTS_EVENTS, REALIZATION_INBOUND

from .conftest import ce_ids, produce, read_all, report, wait_for
from .streams import inbox_count, realization_applied, realization_reports, unique_tag
from .test_kill9 import _at_least

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
N = 300


async def test_two_replicas_with_a_rebalance_and_a_kill_apply_each_report_once(
    topic_prefix, schema_for, db, processes
):
    """Replica 2 joins mid-load (rebalance), replica 1 is then SIGKILLed: each report applied exactly once."""
    schema, tag = schema_for("com"), unique_tag()
    first = processes("commitments", topic_prefix, schema)
    second = processes("commitments", topic_prefix, schema)
    await first.start()
    reports = realization_reports(N, tag)
    third = N // 3
    # In three waves, so that both the join and the kill happen with records still in flight
    # however fast or slow the machine is.
    await produce(topic_prefix + REALIZATION_INBOUND, reports[:third])
    at_join = await wait_for(lambda: _at_least(realization_applied(db, schema, tag), third // 4), interval=0.02)
    await second.start()  # joining the group revokes and reassigns partitions while records are in flight
    await produce(topic_prefix + REALIZATION_INBOUND, reports[third:2 * third])
    await wait_for(lambda: _has_processed(second), timeout=30)
    await produce(topic_prefix + REALIZATION_INBOUND, reports[2 * third:])
    await wait_for(lambda: _at_least(realization_applied(db, schema, tag), 2 * third + 10), interval=0.02,
                   timeout=30)
    first_counts = await first.handled()
    first.kill()
    killed = time.monotonic()
    at_kill = await realization_applied(db, schema, tag)
    assert at_kill < N, "the stream was done before the kill: no fault was injected"

    await wait_for(lambda: _at_least(realization_applied(db, schema, tag), N), timeout=45)
    recovery = time.monotonic() - killed
    events = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                            until=lambda rs: len(set(ce_ids(rs, "realization.recorded.v1"))) >= N)
    recorded = ce_ids(events, "realization.recorded.v1")
    applied = await realization_applied(db, schema, tag)
    second_counts = await second.handled()
    row = report("2 replicas + rebalance + kill", sent=N, applied=applied, lost=N - applied,
                 duplicates=len(set(recorded)) - N, recovery_s=recovery, applied_at_join=at_join,
                 applied_at_kill=at_kill, replica1_processed=int(first_counts.get("processed", 0)),
                 replica2_processed=int(second_counts.get("processed", 0)),
                 redelivered_noop=int(first_counts.get("duplicate", 0) + second_counts.get("duplicate", 0)),
                 kafka_copies=len(recorded) - len(set(recorded)))
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert await inbox_count(db, schema) == N
    assert row["replica1_processed"] > 0 and row["replica2_processed"] > 0  # both really took part


async def _has_processed(svc) -> bool:
    return (await svc.handled()).get("processed", 0) > 0
