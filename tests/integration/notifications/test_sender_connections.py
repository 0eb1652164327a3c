"""The sender against a real SMTP server: woken by commits, reusing connections, surviving a server restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from services.notifications.bootstrap import build
from shared.contracts.topics import COMMITMENTS_EVENTS
from shared.platform.tasks import cancel_and_wait

from ..conftest import DSN, eventually
from . import factories
from .conftest import RecordingHandler, SmtpServer, event_of, free_port, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
REGIONS = ["52.01", "52.02", "52.03", "52.04", "52.05", "52.06"]


class CountingHandler(RecordingHandler):
    """Also counts SMTP sessions (one EHLO per connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd API
        self.sessions += 1
        session.host_name = hostname
        return responses


def counting_server() -> SmtpServer:
    server = SmtpServer(free_port())
    server.handler = CountingHandler()
    server.start()
    return server


async def test_deliveries_are_sent_when_committed_not_at_the_next_poll(topic_prefix, schema_for, db, smtp_server):
    """With a 60 s poll, a committed delivery still goes out within seconds: the commit wakes the sender."""
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port, delivery_poll_seconds=60))
    await rt.start()
    try:
        published = time.monotonic()
        await publish(topic_prefix + COMMITMENTS_EVENTS, [event_of(factories.submitted("52.05", 15000, 3_024_000_000))])
        expected = await eventually(lambda: db.fetchval(f'SELECT count(*) FROM "{schema}".deliveries'))
        await eventually(lambda: _value(len(smtp_server.messages) >= expected), timeout=20, interval=0.05)
        assert time.monotonic() - published < 20  # far less than the 60 s poll
        assert len(smtp_server.messages) == expected
    finally:
        await rt.stop()


async def test_many_emails_share_a_few_smtp_connections(topic_prefix, schema_for, db):
    """Emails for six submissions go over at most `delivery_concurrency` connections, each sent once."""
    smtp = counting_server()
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp.port, delivery_concurrency=2))
    await rt.start()
    try:
        events = [event_of(factories.submitted(region, 15000, 3_024_000_000)) for region in REGIONS]
        await publish(topic_prefix + COMMITMENTS_EVENTS, events)
        expected = await eventually(lambda: _at_least(db.fetchval(
            f"""SELECT count(*) FROM "{schema}".deliveries WHERE channel = 'email'"""), 4 * len(REGIONS)))
        await eventually(lambda: _value(len(smtp.messages) >= expected))
        await eventually(lambda: _at_least(db.fetchval(
            f"""SELECT count(*) FROM "{schema}".deliveries WHERE status = 'sent' AND attempts = 1"""), expected))
        assert len(smtp.messages) == expected
        assert len({m["Message-ID"] for m in smtp.messages}) == expected
        assert 1 <= smtp.handler.sessions <= 2
    finally:
        await rt.stop()
        smtp.stop()


async def test_connections_dropped_by_a_restarted_server_are_replaced_without_a_retry(topic_prefix, schema_for, db):
    """The server restarts between two batches: the idle connections it dropped are replaced, each email sent once."""
    smtp = counting_server()
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp.port, delivery_concurrency=2))
    await rt.start()
    try:
        await publish(topic_prefix + COMMITMENTS_EVENTS, [event_of(factories.submitted("52.01", 15000, 3_024_000_000))])
        first = await eventually(lambda: db.fetchval(  # every email of the first event sent (none in flight)
            f"""SELECT count(*) FILTER (WHERE status = 'sent') FROM "{schema}".deliveries
                HAVING count(*) FILTER (WHERE status = 'sent') = count(*)"""))
        sessions_before = smtp.handler.sessions
        smtp.stop()  # closes every open session
        smtp.start()  # same port, same recording handler
        await publish(topic_prefix + COMMITMENTS_EVENTS, [event_of(factories.submitted("52.02", 15000, 3_024_000_000))])
        await eventually(lambda: _at_least(db.fetchval(
            f"""SELECT count(*) FROM "{schema}".deliveries WHERE status = 'sent'"""), 2 * first))
        rows = await db.fetch(f'SELECT attempts, last_error FROM "{schema}".deliveries')
        assert [r["attempts"] for r in rows] == [1] * len(rows)  # no delivery needed a second attempt
        assert len(smtp.messages) == len(rows) == 2 * first
        assert smtp.handler.sessions > sessions_before  # new connections after the restart
    finally:
        await rt.stop()
        smtp.stop()


async def _value(value):
    return value


async def _at_least(value_coro, threshold: int) -> int:
    value = await value_coro
    return value if value >= threshold else 0


class SlowHandler(RecordingHandler):
    """Accepts each message after a pause, so a stop lands while rows are still queued."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        await asyncio.sleep(0.3)
        return await super().handle_DATA(server, session, envelope)


async def _slow_sender_with_a_queue(topic_prefix: str, schema_for: Any) -> tuple[SmtpServer, Any, str]:
    """A started service sending one at a time to a slow server, with three events' e-mails queued."""
    smtp = SmtpServer(free_port())
    smtp.handler = SlowHandler()
    smtp.start()
    schema = schema_for("not")
    rt, _ = build(notif_settings(topic_prefix, schema, smtp.port, delivery_concurrency=1, delivery_lease_seconds=60))
    await rt.start()
    try:
        events = [event_of(factories.submitted(region, 15000, 3_024_000_000)) for region in REGIONS[:3]]
        await publish(topic_prefix + COMMITMENTS_EVENTS, events)
    except BaseException:
        await rt.stop()
        smtp.stop()
        raise
    return smtp, rt, schema


async def test_a_graceful_stop_marks_what_was_sent_and_gives_back_the_rest(topic_prefix, schema_for, db):
    """Stopped mid-queue: every accepted e-mail is marked sent and the queued rows are free again, no attempt counted
    (only the one send cut short keeps its lease, to be retried when it runs out)."""
    smtp, rt, schema = await _slow_sender_with_a_queue(topic_prefix, schema_for)
    try:
        await eventually(lambda: _value(len(smtp.messages) >= 2), interval=0.05)
    finally:
        await rt.stop()
        smtp.stop()
    rows = await db.fetch(f'SELECT status, attempts, lease_token FROM "{schema}".deliveries WHERE channel = \'email\'')
    sent = [r for r in rows if r["status"] == "sent"]
    pending = [r for r in rows if r["status"] == "pending"]
    # The send cut short may still be recorded by the server (its DATA handler finishes after the
    # client was cancelled) when the rest of the stop takes longer than its 0.3 s, e.g. over TLS to Kafka.
    assert len(sent) <= len(smtp.messages) <= len(sent) + 1 and len(pending) >= 3  # stopped with rows queued
    leased = [r for r in pending if r["lease_token"] is not None]
    assert len(leased) <= 1  # delivery_concurrency=1: at most the send in flight at the stop
    assert all(r["attempts"] == 0 for r in pending if r["lease_token"] is None)  # given back uncounted


async def test_a_hurried_stop_still_marks_every_email_the_server_accepted(topic_prefix, schema_for, db):
    """The sender's task cancelled again and again while it stops (an impatient caller, or a cancellation that
    asyncio.wait_for swallowed on Python 3.11 and `cancel_and_wait` repeats) while its marking waits for the
    database (here: the rows locked by another transaction): the marking still runs to its end once the database
    answers, so every e-mail the server accepted is marked sent, except at most the one send cut short."""
    smtp, rt, schema = await _slow_sender_with_a_queue(topic_prefix, schema_for)
    try:
        await eventually(lambda: _value(len(smtp.messages) >= 1), interval=0.02)
        blocker = await asyncpg.connect(DSN)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute(f'SELECT 1 FROM "{schema}".deliveries FOR UPDATE')  # marking must wait
            await eventually(lambda: _value(len(smtp.messages) >= 3), interval=0.02)
            stopping = asyncio.create_task(cancel_and_wait(rt.background_task("sender"), recancel_seconds=0.01))
            await asyncio.sleep(1.0)  # cancelled ~100 times meanwhile
            accepted = len(smtp.messages)
            await tx.rollback()
        finally:
            await blocker.close()
        await asyncio.wait_for(stopping, timeout=30)
    finally:
        await rt.stop()
        smtp.stop()
    rows = await db.fetch(f'SELECT status FROM "{schema}".deliveries WHERE channel = \'email\'')
    sent = [r for r in rows if r["status"] == "sent"]
    assert accepted >= 3 and accepted - 1 <= len(sent) <= len(smtp.messages), (accepted, len(sent), len(smtp.messages))
