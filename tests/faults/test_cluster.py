"""Three brokers, RF 3, min.insync.replicas=2, under broker failure (deploy/local/cluster.sh test).

A BPJS system streams realization reports (acks=all, idempotent) into the commitments service
while the cluster loses, in turn: the leader of the partitions in use (then it comes back), and
two brokers at once, so only one copy is left and acks=all cannot be met: producers must wait
(retry) instead of having a write acknowledged that one more crash could lose. Figures: sent,
applied, lost, duplicate effects, the longest time without an acknowledged send."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import subprocess
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.topics import COMMITMENTS_EVENTS, REALIZATION_INBOUND
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP, ROOT, ce_ids, read_all, report, wait_for
from .streams import realization_applied, realization_reports, unique_tag

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas"),
              pytest.mark.skipif(os.environ.get("LOCAL_CLUSTER") != "1",
                                 reason="needs the three-broker cluster: deploy/local/cluster.sh test")]
N = 600
PACE_S = 0.05


def cluster(*args: str) -> None:
    subprocess.run([str(ROOT / "deploy/local/cluster.sh"), *args], check=True, timeout=300)


def node_of(port: int) -> int:
    return (port - int(os.environ.get("LOCAL_CLUSTER_PORT_BASE", "29100"))) // 2 + 1


async def leaders(topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000, **client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return {p["partition"]: p["leader"] for p in described["partitions"]}
    finally:
        await admin.close()


async def test_leader_loss_then_two_brokers_down_lose_nothing_and_duplicate_nothing(
    topic_prefix, schema_for, db, processes
):
    schema = schema_for("com")
    topic = topic_prefix + REALIZATION_INBOUND
    svc = processes("commitments", topic_prefix, schema, topic_replication=3, topic_min_insync_replicas=2)
    await svc.start(ready_timeout=120)
    tag = unique_tag()
    records = realization_reports(N, tag)
    acked_at: list[float] = []
    send_failures = collections.Counter()

    async def stream() -> None:
        producer = None
        for key, value, headers in records:
            while True:  # an outside system retries a send until the cluster acknowledges it
                try:
                    if producer is None:
                        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                                                    request_timeout_ms=10000, **client_options())
                        await producer.start()
                    await producer.send_and_wait(topic, value=value, key=key, headers=headers)
                    acked_at.append(time.monotonic())
                    break
                except Exception as exc:  # noqa: BLE001 - counted, then the same record is sent again
                    send_failures[type(exc).__name__] += 1
                    if producer is not None:
                        with contextlib.suppress(Exception):  # a producer that cannot stop is dropped
                            await asyncio.wait_for(producer.stop(), 5)
                        producer = None
                    await asyncio.sleep(0.5)
            await asyncio.sleep(PACE_S)
        if producer is not None:
            await producer.stop()

    started = time.monotonic()
    sender = asyncio.create_task(stream())
    await wait_for(lambda: asyncio.sleep(0, len(acked_at) >= N // 6), timeout=120)
    leader = collections.Counter((await leaders(topic)).values()).most_common(1)[0][0]
    await asyncio.to_thread(cluster, "kill", str(leader))
    killed_leader_at = len(acked_at)
    await wait_for(lambda: asyncio.sleep(0, len(acked_at) >= killed_leader_at + N // 6), timeout=180)
    await asyncio.to_thread(cluster, "start-node", str(leader))
    # Two brokers down at once: one copy left, below min.insync.replicas=2 (and no controller quorum).
    await wait_for(lambda: asyncio.sleep(0, len(acked_at) >= N // 2 + N // 6), timeout=180)
    others = [n for n in (1, 2, 3) if n != leader]
    await asyncio.to_thread(cluster, "kill", str(others[0]))
    await asyncio.to_thread(cluster, "kill", str(leader))
    during = len(acked_at)
    await asyncio.sleep(15)
    acked_while_one_left = len(acked_at) - during
    await asyncio.to_thread(cluster, "start-node", str(leader))
    await asyncio.to_thread(cluster, "start-node", str(others[0]))
    await asyncio.wait_for(sender, timeout=600)
    applied = await wait_for(
        lambda: _all_applied(db, schema, tag), timeout=300, interval=1.0)
    events = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                            until=lambda rs: len(set(ce_ids(rs, "realization.recorded.v1"))) >= N, timeout=120)
    recorded = ce_ids(events, "realization.recorded.v1")
    rows = await db.fetchval(f'SELECT count(*) - count(DISTINCT report_id) FROM "{schema}".realization '
                             "WHERE report_id LIKE $1", f"{tag}-%")
    duplicates = len(set(recorded)) - N + rows  # one realization.recorded and one row per report
    gaps = [b - a for a, b in itertools.pairwise(acked_at)]
    failover = max(gaps[max(killed_leader_at - 1, 0):killed_leader_at + N // 6])  # the leader's loss alone
    row = report("cluster_leader_kill_then_two_down", sent=N, applied=applied, lost=N - applied,
                 duplicates=duplicates, recovery_s=max(gaps), leader_failover_s=round(failover, 2),
                 wall_s=round(time.monotonic() - started, 1),
                 acked_while_one_broker_left=acked_while_one_left, send_retries=dict(send_failures),
                 kafka_copies=len(recorded) - len(set(recorded)))
    assert applied == N and duplicates == 0
    # With one broker of three, acks=all with min.insync.replicas=2 acknowledged nothing.
    assert acked_while_one_left == 0, row
    svc.stop()


async def _all_applied(db, schema: str, tag: str) -> int | None:
    applied = await realization_applied(db, schema, tag)
    return applied if applied >= N else None
