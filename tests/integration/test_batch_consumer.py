"""The batch consumer path (`runtime.consumer(..., batch_size=N)`): same guarantees, one transaction per batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.notifications.settings import NotificationsSettings
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.notifications import Channel, DeliveryFailed
from shared.contracts.topics import INVITATIONS_EVENTS, NOTIFICATIONS_EVENTS, dlq
from shared.platform import migrations
from shared.platform.envelope import CloudEvent
from shared.platform.errors import Invalid
from shared.platform.runtime import Runtime

from .conftest import eventually, read_topic, service_settings
from .test_delivery_guarantees import TYPE, _async, scheduled_event, send

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def write_journal(conn, event_ids: list[str]) -> None:
    await conn.executemany("INSERT INTO event_journal VALUES ($1)", [(i,) for i in event_ids])


def batch_runtime(topic_prefix: str, schema: str, *, reject: set[str], fail: set[str],
                  deferred: bool = False, emits: bool = False) -> Runtime:
    """A journal consumer on the batch path; it rejects `reject` ids and always crashes on `fail` ids.

    `deferred`: the journal row goes through `ctx.deferred` (written once per batch before the commit).
    `emits`: each handled event also emits a follow-up (`follow_up`) on NOTIFICATIONS_EVENTS."""
    journal = migrations.Migration("test", 1, "journal", "CREATE TABLE event_journal (event_id text NOT NULL)")
    settings = service_settings(NotificationsSettings, topic_prefix, schema, service_name="journal",
                                consumer_max_attempts=2)
    rt = Runtime(settings, migration_sets=[migrations.messaging(), [journal]],
                 topics_in=[INVITATIONS_EVENTS], topics_out=[NOTIFICATIONS_EVENTS] if emits else [])

    async def record(payload: MeetingScheduled, ctx) -> None:
        # The write comes first, so a rejection must really undo it.
        if deferred:
            ctx.deferred("journal", write_journal).append(ctx.event.id)
        else:
            await ctx.conn.execute("INSERT INTO event_journal VALUES ($1)", ctx.event.id)
        if emits:
            await ctx.emit(follow_up(ctx.event))
        if ctx.event.id in reject:
            raise Invalid("meeting refused")
        if ctx.event.id in fail:
            raise RuntimeError("bug in handler")

    rt.consumer([INVITATIONS_EVENTS], batch_size=100).handles(MeetingScheduled)(record)
    return rt


def follow_up(cause: CloudEvent) -> DeliveryFailed:
    return DeliveryFailed(delivery_id=uuid.uuid4(), recipient_id="r-1", channel=Channel.EMAIL,
                          source_event_id=cause.id, source_event_type=cause.type, attempts=0,
                          at=datetime.now(UTC), reason="test")


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


async def test_a_batchs_follow_up_events_are_published_once_each_in_order_with_their_cause(
        topic_prefix, schema_for, db):
    """Follow-ups are written to the outbox together at the end of the batch: one per applied event, in the
    order consumed, correlated and caused by it; a rejected and a failing record's follow-ups are undone with
    them; the outbox is empty afterwards (the relay was woken and published everything)."""
    schema = schema_for("journal")
    # One meeting: every record on one partition, so the consumed order is the sent order.
    template = MeetingScheduled.model_validate_json(scheduled_event().data)
    events = [CloudEvent.new(source="/test", type=TYPE, data=template.model_dump_json().encode(),
                             correlation_id=f"corr-{n}") for n in range(8)]
    rejected, failing = events[2], events[5]
    good = [e for e in events if e not in (rejected, failing)]
    topic = topic_prefix + INVITATIONS_EVENTS
    await send(topic, [(b"k", e.data, e.to_headers()) for e in events])
    rt = batch_runtime(topic_prefix, schema, reject={rejected.id}, fail={failing.id}, emits=True)
    await rt.start()
    try:
        consumer = rt.consumers[0]
        await eventually(lambda: _async(sum(consumer.counts.values()) == len(events)), timeout=60)
        assert consumer.counts == {"applied": 6, "dead_lettered": 2}
        published = await read_topic(topic_prefix + NOTIFICATIONS_EVENTS, expect=len(good))
        heads = [{k: v.decode() for k, v in r.headers} for r in published]
        assert [h["ce_causationid"] for h in heads] == [e.id for e in good]
        assert [h["ce_correlationid"] for h in heads] == [e.correlation_id for e in good]
        assert len({h["ce_id"] for h in heads}) == len(good)
        await eventually(lambda: db.fetchval(f'SELECT count(*) = 0 FROM "{schema}".outbox'), timeout=30)
    finally:
        await rt.stop()
