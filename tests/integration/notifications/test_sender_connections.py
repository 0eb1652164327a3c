"""The sender against a real SMTP server: woken by commits, reusing connections, surviving a server restart."""

from __future__ import annotations

import time

import pytest

from services.notifications.bootstrap import build
from shared.contracts.topics import COMMITMENTS_EVENTS

from ..conftest import eventually
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
