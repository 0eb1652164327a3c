"""A sender killed between send and mark resends under the same Message-ID; the daily digest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import domain
from services.notifications.bootstrap import build
from shared.contracts.topics import COMMITMENTS_EVENTS, INVITATIONS_EVENTS
from shared.platform.formatting import format_date

from ..conftest import BOOTSTRAP, DSN, ROOT, eventually
from . import factories
from .conftest import FakeClock, event_of, notif_settings, publish

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_sender_killed_after_send_before_mark_resends_same_message_id(topic_prefix, schema_for, db,
                                                                              smtp_server):
    """SIGKILL after the SMTP server accepted: one delivery row; the resend carries the same Message-ID."""
    schema = schema_for("not")
    event = event_of(factories.invitation())
    await publish(topic_prefix + INVITATIONS_EVENTS, [event])
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "TOPIC_PREFIX": topic_prefix,
        "NOTIFICATIONS_DB_SCHEMA": schema, "NOTIFICATIONS_SMTP_PORT": str(smtp_server.port),
        "NOTIFICATIONS_SMTP_STARTTLS": "false", "NOTIFICATIONS_DELIVERY_POLL_SECONDS": "0.1",
        "NOTIFICATIONS_DELIVERY_LEASE_SECONDS": "2",
        "NOTIFICATIONS_SMTP_TIMEOUT_SECONDS": "1", "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": "1", "PYTHONPATH": str(ROOT),
    }
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tests.integration.notifications.crashing_sender"], env=env,
        cwd=ROOT, capture_output=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    table = f'"{schema}".deliveries'
    row = await db.fetchrow(f"SELECT * FROM {table}")
    assert row["status"] == "pending" and row["attempts"] == 1 and row["lease_until"] is not None
    assert len(smtp_server.messages) == 1

    rt, _ = build(notif_settings(topic_prefix, schema, smtp_server.port))
    await rt.start()
    try:
        await eventually(lambda: db.fetchval(f"SELECT status = 'sent' FROM {table}"), timeout=20)
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 1
        assert await db.fetchval(f"SELECT attempts FROM {table}") == 2
        # SMTP cannot deduplicate: the copy exists, but with the same Message-ID mail clients collapse it.
        ids = {m["Message-ID"] for m in smtp_server.messages}
        assert len(smtp_server.messages) == 2 and ids == {f"<{row['delivery_id']}@notifications.ntb-rakor>"}
        assert rt.consumers[0].counts.get("applied", 0) == 0  # the event itself is not handled again
    finally:
        await rt.stop()


async def test_daily_digest_summarises_the_day_once_per_recipient(topic_prefix, schema_for, db, smtp_server):
    """At the digest time each provincial staff member gets one email with counts, Rupiah totals and the WITA date."""
    schema = schema_for("not")
    clock = FakeClock()
    settings = notif_settings(topic_prefix, schema, smtp_server.port)
    rt, _ = build(settings, clock=clock)
    await rt.start()
    try:
        due = domain.next_digest_at(clock(), settings.digest_time)
        events = [event_of(factories.submitted("52.05", 15000, 3_024_000_000)),
                  event_of(factories.submitted("52.04", 20000, 1_080_000_000)),
                  event_of(factories.verified("52.04", 20000, 1_080_000_000)),
                  event_of(factories.overdue("52.72"))]
        await publish(topic_prefix + COMMITMENTS_EVENTS, events)
        items = f'"{schema}".digest_items'
        await eventually(lambda: db.fetchval(f"SELECT count(*) = 8 FROM {items}"))
        staff = ("bidang.hijamsos@disnakertrans.ntbprov.go.id", "monitoring.ntb@bpjsketenagakerjaan.go.id")
        await asyncio.sleep(0.5)
        assert all(smtp_server.handler.to(a) == [] for a in staff)  # no message per event for digest readers
        assert len(smtp_server.handler.to("verifikasi.jamsos@disnakertrans.ntbprov.go.id")) == 2  # reviewers: each

        clock.offset = due - datetime.now(UTC) + timedelta(seconds=1)
        await eventually(lambda: _value(all(len(smtp_server.handler.to(a)) == 1 for a in staff)), timeout=20)
        msg = smtp_server.handler.to(staff[0])[0]
        assert msg["Subject"].strip() == f"Ringkasan harian komitmen BPJS Ketenagakerjaan, {format_date(due)}"
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert "Komitmen disampaikan: 2, total Rp4.104.000.000 untuk 35.000 pekerja" in text
        assert "- Kabupaten Sumbawa: Rp1.080.000.000 (20.000 pekerja)" in text
        assert "- Kabupaten Dompu: Rp3.024.000.000 (15.000 pekerja)" in text
        assert "Komitmen diverifikasi: 1, total Rp1.080.000.000" in text
        assert "Daerah melewati batas waktu: 1\n- Kota Bima (batas Selasa, 1 Desember 2026 pukul 16.00 WITA)" in text
        assert "Rp4.104.000.000" in msg.get_body(("html",)).get_content()

        assert await db.fetchval(f"SELECT count(*) FROM {items} WHERE digest_id IS NULL") == 0
        next_key = f"daily:{(due + timedelta(days=1)).astimezone(domain.WITA).date().isoformat()}"
        timers = await db.fetch(f'SELECT key, fired_at FROM "{schema}".timers WHERE kind = $1 ORDER BY due_at',
                                "notifications.digest")
        assert [t["key"] for t in timers][-1] == next_key and timers[-1]["fired_at"] is None
        clock.offset += timedelta(seconds=60)
        await asyncio.sleep(1)
        assert await db.fetchval(f"""SELECT count(*) FROM "{schema}".deliveries
                                     WHERE source_event_type = 'ntb.notifications.digest.daily'""") == 2
        assert all(len(smtp_server.handler.to(a)) == 1 for a in staff)
    finally:
        await rt.stop()


async def _value(v):
    return v
