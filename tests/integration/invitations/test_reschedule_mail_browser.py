"""After a reschedule, the link in the mailed notice opens the current meeting, in headless Chromium.

The whole path runs for real: the invitations service publishes one rescheduled event per invitee
(with that person's own link), the notifications service renders and mails it to an SMTP sink,
and the link is taken from the mail as a person would click it.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from services.notifications.bootstrap import build as build_notifications
from shared.platform.formatting import format_wita_range
from shared.platform.wita import as_wita

from ..conftest import eventually
from ..notifications.conftest import SmtpServer, notif_settings
from .conftest import organizer_client, scheduled_and_invited
from .test_rsvp_browser import DESKTOP, PHONE, browser, free_port, serve, shots  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

LINK = re.compile(r"https?://\S+/undangan/\S+")


def mails(smtp: SmtpServer, to: str, subject: str) -> list:
    return [m for m in smtp.messages if m["X-Envelope-To"] == to and m["Subject"].strip().startswith(subject)]


def link_in(message) -> str:
    found = LINK.findall(message.get_body(("plain",)).get_content())
    assert len(found) == 1, found  # one link, the reader's own
    return found[0]


async def test_the_link_in_the_rescheduled_notice_opens_the_current_meeting(
        start_service, clock, schema_for, topic_prefix, browser, shots, db):  # noqa: F811
    smtp = SmtpServer(free_port())
    smtp.start()
    port = free_port()
    rt, app = await start_service(public_base_url=f"http://127.0.0.1:{port}")
    notifications, _ = build_notifications(notif_settings(topic_prefix, schema_for("not"), smtp.port))
    await notifications.start()
    server, task, base = await serve(app, rt, port=port)
    to = "bpkad@dompukab.go.id"
    try:
        # 09.00 WITA ten days on (a meeting at a time an official would see in an invitation).
        start = as_wita(clock.now + timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
        client, auth = await organizer_client(rt, app)
        async with client:
            meeting_id = await scheduled_and_invited(client, auth, start)
            invitation = (await eventually(lambda: asyncio.sleep(0, mails(smtp, to, "Undangan"))))[0]
            first_link = link_in(invitation)

            page = await browser.new_page(viewport=PHONE, device_scale_factor=2)
            await page.goto(first_link)
            await page.get_by_label("Saya akan hadir").check()
            await page.get_by_role("button", name="Simpan jawaban").click()
            await page.wait_for_url("**tersimpan=1")

            later = start + timedelta(days=2, hours=4)  # two days later, 13.00 WITA
            r = await client.post(f"/meetings/{meeting_id}/reschedule", headers=auth, json={
                "starts_at": later.isoformat(), "ends_at": (later + timedelta(hours=2)).isoformat(),
                "reason": "Menyesuaikan agenda Wakil Gubernur"})
            assert r.status_code == 200, r.text
        notice = (await eventually(lambda: asyncio.sleep(0, mails(smtp, to, "Perubahan jadwal"))))[0]
        text = notice.get_body(("plain",)).get_content()
        assert "Bapak/Ibu telah menyatakan akan hadir" in text  # told what they answered, and how to change it
        link = link_in(notice)
        assert link.startswith(f"{base}/undangan/") and link != first_link  # signed with the new deadline

        await page.goto(link)
        new_time = (await page.locator("dt:text-is('Waktu') + dd").inner_text())
        assert new_time == format_wita_range(later, later + timedelta(hours=2))
        assert "Jadwal rapat telah diubah" in await page.content()
        assert await page.get_by_test_id("jawaban").inner_text() == "Hadir"
        await page.screenshot(path=shots / "rsvp-jadwal-baru-ponsel.png", full_page=True)
        # The reader acts from it: the answer changed on the moved meeting is stored once.
        await page.get_by_label("Saya tidak dapat hadir").check()
        await page.get_by_label("Alasan").fill("Bertepatan dengan sidang anggaran DPRD")
        await page.get_by_role("button", name="Simpan jawaban").click()
        await page.wait_for_url("**tersimpan=1")
        assert await page.get_by_test_id("jawaban").inner_text() == "Tidak hadir"
        row = await db.fetchrow(f'SELECT response, reason FROM "{schema_for("inv")}".invitations '
                                "WHERE region_code = '52.05' AND role = 'kepala_bpkad'")
        assert tuple(row) == ("declined", "Bertepatan dengan sidang anggaran DPRD")

        # The link mailed first still leads to the current meeting too.
        desktop = await browser.new_page(viewport=DESKTOP)
        await desktop.goto(first_link)
        assert await desktop.locator("dt:text-is('Waktu') + dd").inner_text() == new_time
    finally:
        server.should_exit = True
        await task
        await notifications.stop()
        smtp.stop()
