"""PostgreSQL crashed and restarted under load: rolled-back work is redone, never skipped or doubled."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from shared.contracts.topics import COMMITMENTS_EVENTS, REALIZATION_INBOUND

from .conftest import DSN, ce_ids, needs_managed_stack, produce, read_all, report, stack, wait_for
from .streams import inbox_count, realization_applied, realization_reports, unique_tag
from .test_kill9 import _at_least

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas"), needs_managed_stack]
N = 240


@needs_managed_stack
async def test_postgres_crash_under_load_commits_no_offset_for_rolled_back_work(topic_prefix, schema_for, processes):
    """Immediate shutdown of PostgreSQL mid-stream: after it is back every report is applied exactly once."""
    schema, tag = schema_for("com"), unique_tag()
    svc = processes("commitments", topic_prefix, schema)
    await svc.start()
    db = await asyncpg.connect(DSN)
    await produce(topic_prefix + REALIZATION_INBOUND, realization_reports(N, tag))
    try:
        at_crash = await wait_for(lambda: _at_least(realization_applied(db, schema, tag), N // 4), interval=0.02)
    finally:
        await db.close()
    try:
        # Immediate shutdown: open transactions are lost and rolled back by crash recovery.
        await asyncio.to_thread(stack, "postgres.sh", "kill")
        crashed = time.monotonic()
        await asyncio.sleep(3)
    finally:
        await asyncio.to_thread(stack, "postgres.sh", "start")
    back = time.monotonic()
    db = await asyncpg.connect(DSN)
    try:
        await wait_for(lambda: _at_least(realization_applied(db, schema, tag), N), timeout=45)
        recovery = time.monotonic() - back
        events = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                                until=lambda rs: len(set(ce_ids(rs, "realization.recorded.v1"))) >= N)
        recorded = ce_ids(events, "realization.recorded.v1")
        applied = await realization_applied(db, schema, tag)
        inbox = await inbox_count(db, schema)
    finally:
        await db.close()
    counts = await svc.handled()
    failures = await svc.failures()
    row = report("PostgreSQL crash + restart", sent=N, applied=applied, lost=N - applied,
                 duplicates=len(set(recorded)) - N, recovery_s=recovery, applied_at_crash=at_crash,
                 db_down_s=round(back - crashed, 1), transient_retries=int(failures.get("transient", 0)),
                 processed=int(counts.get("applied", 0)), redelivered_noop=int(counts.get("duplicate", 0)),
                 kafka_copies=len(recorded) - len(set(recorded)))
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert inbox == N
    assert row["processed"] == N  # one process, no restart: each report handled to completion exactly once
    assert svc.proc is not None and svc.proc.poll() is None and svc.starts == 1
