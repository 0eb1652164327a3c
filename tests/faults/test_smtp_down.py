"""The SMTP server down for a while: deliveries back off, retry, and complete once it returns, once each."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.contracts.topics import INVITATIONS_EVENTS
from tests.integration.notifications.conftest import SmtpServer

from .conftest import free_port, produce, report, wait_for
from .streams import invitation_events, mail_figures, unique_tag
from .test_kill9 import NOTIFICATIONS_FAST

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
N = 60
DOWN_SECONDS = 6


async def test_deliveries_back_off_while_smtp_is_down_and_complete_once_it_returns(
    topic_prefix, schema_for, db, processes
):
    """No SMTP server for a while: every delivery retries with backoff, then each email arrives exactly once."""
    smtp = SmtpServer(free_port())  # not started: connections are refused
    schema, tag = schema_for("not"), unique_tag()
    settings = NOTIFICATIONS_FAST | dict(delivery_backoff_base_seconds=0.5, delivery_backoff_max_seconds=2,
                                         delivery_max_attempts=40)
    svc = processes("notifications", topic_prefix, schema, smtp_port=smtp.port, **settings)
    deliveries = f'"{schema}".deliveries'
    try:
        await svc.start()
        records, addresses = invitation_events(N, tag)
        await produce(topic_prefix + INVITATIONS_EVENTS, records)
        down_since = time.monotonic()
        # Every delivery has been tried and refused at least twice: the backoff loop is running.
        await wait_for(lambda: db.fetchval(
            f"SELECT count(*) = $1 FROM {deliveries} WHERE status = 'pending' AND attempts >= 2", N), timeout=40)
        await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
        attempts_while_down = await db.fetchval(f"SELECT sum(attempts) FROM {deliveries}")
        assert await db.fetchval(f"SELECT count(*) FROM {deliveries} WHERE status <> 'pending'") == 0
        errors = await db.fetchval(f"SELECT count(*) FROM {deliveries} WHERE last_error IS NOT NULL")

        smtp.start()
        back = time.monotonic()
        await wait_for(lambda: db.fetchval(f"SELECT count(*) = $1 FROM {deliveries} WHERE status = 'sent'", N),
                       timeout=40)
        recovery = time.monotonic() - back
        figures = mail_figures(smtp.messages, addresses)
        row = report("SMTP down", sent=N, applied=figures["delivered"], lost=figures["lost"],
                     duplicates=figures["duplicates"], recovery_s=recovery, down_s=round(back - down_since, 1),
                     attempts_while_down=attempts_while_down, same_message_id_resends=figures["resends"])
        assert errors == N  # each row records why it is waiting
        assert row["lost"] == 0 and row["duplicates"] == 0
        assert figures["resends"] == 0 and figures["received"] == N  # nobody died: not one extra copy
    finally:
        smtp.stop()
