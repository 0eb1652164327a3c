"""The batch consumer path (`runtime.consumer(..., batch_size=N)`): same guarantees, one transaction per batch."""

from __future__ import annotations

import pytest

from services.notifications.settings import NotificationsSettings
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.topics import INVITATIONS_EVENTS, dlq
from shared.platform import migrations
from shared.platform.errors import Invalid
from shared.platform.runtime import Runtime

from .conftest import eventually, read_topic, service_settings
from .test_delivery_guarantees import TYPE, _async, scheduled_event, send

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def write_journal(conn, event_ids: list[str]) -> None:
    await conn.executemany("INSERT INTO event_journal VALUES ($1)", [(i,) for i in event_ids])


def batch_runtime(topic_prefix: str, schema: str, *, reject: set[str], fail: set[str],
                  deferred: bool = False) -> Runtime:
    """A journal consumer on the batch path; it rejects `reject` ids and always crashes on `fail` ids.

    `deferred`: the journal row goes through `ctx.deferred` (written once per batch before the commit)."""
    journal = migrations.Migration("test", 1, "journal", "CREATE TABLE event_journal (event_id text NOT NULL)")
    settings = service_settings(NotificationsSettings, topic_prefix, schema, service_name="journal",
                                consumer_max_attempts=2)
    rt = Runtime(settings, migration_sets=[migrations.messaging(), [journal]],
                 topics_in=[INVITATIONS_EVENTS])

    async def record(payload: MeetingScheduled, ctx) -> None:
        # The write comes first, so a rejection must really undo it.
        if deferred:
            ctx.deferred("journal", write_journal).append(ctx.event.id)
        else:
            await ctx.conn.execute("INSERT INTO event_journal VALUES ($1)", ctx.event.id)
        if ctx.event.id in reject:
            raise Invalid("meeting refused")
        if ctx.event.id in fail:
            raise RuntimeError("bug in handler")

    rt.consumer([INVITATIONS_EVENTS], batch_size=100).handles(MeetingScheduled)(record)
    return rt


@pytest.mark.parametrize("deferred", [False, True], ids=["immediate-writes", "deferred-writes"])
async def test_batch_isolates_rejected_and_failing_records_and_dedupes(topic_prefix, schema_for, db, deferred):
    """In one batch: poison, a rejected and an always-failing record are dead-lettered, only their effects undone
    (also writes deferred to the end of the batch); a duplicate is handled once; every other record commits."""
    schema = schema_for("journal")
    good = [scheduled_event() for _ in range(6)]
    rejected, failing = scheduled_event(), scheduled_event()
    topic = topic_prefix + INVITATIONS_EVENTS
    records = [(b"k", e.data, e.to_headers()) for e in good[:3]]
    records += [(b"k", b"{not json", scheduled_event().to_headers()),
                (b"k", rejected.data, rejected.to_headers()),
                (b"k", good[0].data, good[0].to_headers()),  # redelivered within the same batch
                (b"k", failing.data, failing.to_headers())]
    records += [(b"k", e.data, e.to_headers()) for e in good[3:]]
    await send(topic, records)  # all waiting before the consumer starts: they arrive as one batch
    rt = batch_runtime(topic_prefix, schema, reject={rejected.id}, fail={failing.id}, deferred=deferred)
    await rt.start()
    try:
        consumer = rt.consumers[0]
        await eventually(lambda: _async(sum(consumer.counts.values()) == len(records)), timeout=60)
        journal = [r["event_id"] for r in await db.fetch(f'SELECT event_id FROM "{schema}".event_journal')]
        assert sorted(journal) == sorted(e.id for e in good)
        assert consumer.counts == {"applied": 6, "duplicate": 1, "dead_lettered": 3}
        dead = await read_topic(dlq(topic), expect=3)
        reasons = {dict(r.headers).get("ce_id", b"").decode(): dict(r.headers)["dlq_reason"].decode() for r in dead}
        assert reasons[rejected.id] == "rejected: meeting refused"
        assert reasons[failing.id].startswith("handler failed 2 times: RuntimeError")
        assert any(reason.startswith(f"invalid {TYPE} payload") or "not valid JSON" in reason
                   for reason in reasons.values())
        inbox = await db.fetchval(f'SELECT count(*) FROM "{schema}".inbox')
        assert inbox == 6  # rejected and failed events are not remembered: a replay is handled again
    finally:
        await rt.stop()


async def test_batch_redelivery_after_restart_changes_nothing(topic_prefix, schema_for, db):
    """The same events delivered again to a restarted batch consumer are all duplicates: no second effect."""
    schema = schema_for("journal")
    events = [scheduled_event() for _ in range(20)]
    topic = topic_prefix + INVITATIONS_EVENTS
    await send(topic, [(b"k", e.data, e.to_headers()) for e in events])
    rt = batch_runtime(topic_prefix, schema, reject=set(), fail=set())
    await rt.start()
    try:
        await eventually(lambda: _async(rt.consumers[0].counts.get("applied", 0) == 20), timeout=60)
    finally:
        await rt.stop()
    # Replaying the same events (e.g. an operator's replay, or a crash before the offset commit).
    await send(topic, [(b"k", e.data, e.to_headers()) for e in events])
    rt = batch_runtime(topic_prefix, schema, reject=set(), fail=set())
    await rt.start()
    try:
        await eventually(lambda: _async(rt.consumers[0].counts.get("duplicate", 0) == 20), timeout=60)
        assert rt.consumers[0].counts == {"duplicate": 20}
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".event_journal') == 20
    finally:
        await rt.stop()
