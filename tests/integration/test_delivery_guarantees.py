"""Delivery guarantees on the real stack: inbox, outbox under a Kafka outage, DLQ, crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from services.notifications.settings import NotificationsSettings
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.roles import Role
from shared.contracts.topics import INVITATIONS_EVENTS, dlq
from shared.platform import migrations
from shared.platform.envelope import CloudEvent
from shared.platform.kafka_security import client_options
from shared.platform.runtime import Runtime

from .conftest import (
    BOOTSTRAP,
    DSN,
    MANAGED_STACK,
    ROOT,
    canonical_key,
    eventually,
    http_client,
    issue_key,
    read_topic,
    service_settings,
    stack,
)
from .test_first_flow import meeting_body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
needs_managed_stack = pytest.mark.skipif(
    not MANAGED_STACK, reason="stops and starts servers: only against the project's own local stack"
)
TYPE = "ntb.invitations.meeting.scheduled.v1"


def scheduled_event(**overrides) -> CloudEvent:
    start = datetime.now(UTC) + timedelta(days=10)
    payload = MeetingScheduled(meeting_id=uuid.uuid4(), title="Rakor", starts_at=start,
                               ends_at=start + timedelta(hours=2), venue="Mataram", organizer="Wagub NTB")
    return CloudEvent.new(source="/test", type=TYPE, data=payload.model_dump_json().encode(), **overrides)


async def send(topic: str, records: list[tuple[bytes | None, bytes | None, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", **client_options())
    await producer.start()
    try:
        for key, value, headers in records:
            # b"k" stands for "the right key": the payload's (consumers refuse any other).
            if key in (None, b"k"):
                key = canonical_key(value, headers)
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def journal_count(db, schema: str):
    return lambda: db.fetchval(f'SELECT count(*) FROM "{schema}".event_journal')


async def test_redelivered_event_changes_nothing(topic_prefix, schema_for, db):
    """The same event delivered three times (twice binary, once structured) is journaled once."""
    rt, _ = build_notifications(service_settings(NotificationsSettings, topic_prefix, schema_for("not")))
    await rt.start()
    try:
        event = scheduled_event()
        structured = json.dumps({"specversion": "1.0", "id": event.id, "source": event.source, "type": TYPE,
                                 "data": json.loads(event.data)}).encode()
        topic = topic_prefix + INVITATIONS_EVENTS
        await send(topic, [(b"k", event.data, event.to_headers())] * 2
                   + [(b"k", structured, [("content-type", b"application/cloudevents+json")])])
        consumer = rt.consumers[0]
        await eventually(lambda: _async(consumer.counts.get("duplicate", 0) == 2))
        assert await journal_count(db, schema_for("not"))() == 1
        assert consumer.counts == {"applied": 1, "duplicate": 2}
    finally:
        await rt.stop()


async def _async(value):
    return value


def journal_runtime(topic_prefix: str, schema: str) -> Runtime:
    """A bare runtime with the shared consumer's default rules (unknown types are dead-lettered)."""
    journal = migrations.Migration("test", 1, "journal", "CREATE TABLE event_journal (event_id text NOT NULL)")
    settings = service_settings(NotificationsSettings, topic_prefix, schema, service_name="journal")
    rt = Runtime(settings, migration_sets=[migrations.messaging(), [journal]],
                 topics_in=[INVITATIONS_EVENTS])

    async def record(payload: MeetingScheduled, ctx) -> None:
        await ctx.conn.execute("INSERT INTO event_journal VALUES ($1)", ctx.event.id)

    rt.consumer([INVITATIONS_EVENTS]).handles(MeetingScheduled)(record)
    return rt


async def test_malformed_records_are_dead_lettered_and_the_next_good_one_is_processed(topic_prefix, schema_for, db):
    """Poison records go to <topic>.dlq with reason and original bytes; the good record after them is handled."""
    rt = journal_runtime(topic_prefix, schema_for("journal"))
    await rt.start()
    try:
        good = scheduled_event()
        unknown = CloudEvent.new(source="/test", type="ntb.nobody.knows.v1", data=b"{}")
        wrong_schema = CloudEvent.new(source="/test", type=TYPE, data=b'{"meeting_id": "not-a-uuid"}')
        missing_type = [(k, v) for k, v in good.to_headers() if k != "ce_type"]
        poison = [
            (b"k", os.urandom(64), []),
            (b"k", good.data, missing_type),
            (b"k", unknown.data, unknown.to_headers()),
            (b"k", wrong_schema.data, wrong_schema.to_headers()),
            (b"k", b"{not json", scheduled_event().to_headers()),
        ]
        topic = topic_prefix + INVITATIONS_EVENTS
        await send(topic, [*poison, (b"k", good.data, good.to_headers())])

        await eventually(journal_count(db, schema_for("journal")))
        dead = await read_topic(dlq(topic), expect=len(poison))
        assert [r.value for r in dead] == [value for _, value, _ in poison]
        reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
        assert reasons[0].startswith("undecodable")
        assert "type" in reasons[1]
        assert "type 'ntb.nobody.knows.v1' is not accepted on ntb.invitations.events" in reasons[2]
        assert reasons[3].startswith(f"invalid {TYPE} payload") and "meeting_id" in reasons[3]
        assert "not valid JSON" in reasons[4]
        assert dict(dead[0].headers)["dlq_original_topic"] == topic.encode()
        consumer = rt.consumers[0]
        assert consumer.counts == {"dead_lettered": 5, "applied": 1}
        assert sum(consumer.counts.values()) == len(poison) + 1  # records in = processed + dead-lettered
    finally:
        await rt.stop()


@needs_managed_stack
async def test_event_written_while_kafka_is_down_is_published_when_it_returns(topic_prefix, schema_for, db):
    """The outbox holds an event while the broker is stopped and publishes it once the broker is back."""
    inv_rt, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema_for("inv")))
    not_rt, _ = build_notifications(service_settings(NotificationsSettings, topic_prefix, schema_for("not")))
    await inv_rt.start()
    await not_rt.start()
    token = await issue_key(inv_rt, Role.ORGANIZER)
    try:
        await asyncio.to_thread(stack, "kafka.sh", "stop")
        async with http_client(inv_app, inv_rt) as client:
            response = await client.post("/meetings", json=meeting_body(),
                                         headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        await asyncio.sleep(2)
        outbox = f'"{schema_for("inv")}".outbox'
        assert await db.fetchval(f"SELECT count(*) FROM {outbox}") == 1
    finally:
        await asyncio.to_thread(stack, "kafka.sh", "start")
    try:
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 0 FROM {outbox}"),
                         timeout=60)
        assert await eventually(journal_count(db, schema_for("not")), timeout=60) == 1
    finally:
        await not_rt.stop()
        await inv_rt.stop()


@needs_managed_stack
async def test_database_outage_is_retried_and_the_record_is_not_skipped(topic_prefix, schema_for, db):
    """With PostgreSQL down the consumer backs off; once it is back the waiting record is processed."""
    rt, _ = build_notifications(service_settings(NotificationsSettings, topic_prefix, schema_for("not")))
    await rt.start()
    await db.close()
    try:
        await asyncio.to_thread(stack, "postgres.sh", "stop")
        event = scheduled_event()
        await send(topic_prefix + INVITATIONS_EVENTS, [(b"k", event.data, event.to_headers())])
        await asyncio.sleep(3)
    finally:
        await asyncio.to_thread(stack, "postgres.sh", "start")
    import asyncpg

    conn = await asyncpg.connect(DSN)
    try:
        assert await eventually(journal_count(conn, schema_for("not")), timeout=60) == 1
        assert rt.consumers[0].counts == {"applied": 1}
    finally:
        await conn.close()
        await rt.stop()


async def test_consumer_killed_between_db_commit_and_offset_commit_causes_no_double_effect(
    topic_prefix, schema_for, db
):
    """SIGKILL after the handler's commit but before the offset commit: the redelivery is a no-op."""
    schema = schema_for("not")
    event = scheduled_event()
    await send(topic_prefix + INVITATIONS_EVENTS, [(b"k", event.data, event.to_headers())])
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "TOPIC_PREFIX": topic_prefix,
        "NOTIFICATIONS_DB_SCHEMA": schema, "PYTHONPATH": str(ROOT),
    }
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tests.integration.crashing_consumer"], env=env, cwd=ROOT,
        capture_output=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert await journal_count(db, schema)() == 1  # the effect committed before the kill

    rt, _ = build_notifications(service_settings(NotificationsSettings, topic_prefix, schema))
    await rt.start()
    try:
        consumer = rt.consumers[0]
        await eventually(lambda: _async(consumer.counts.get("duplicate", 0) == 1), timeout=60)
        assert await journal_count(db, schema)() == 1
        assert consumer.counts == {"duplicate": 1}
    finally:
        await rt.stop()
