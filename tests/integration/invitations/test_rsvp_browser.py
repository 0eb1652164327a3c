"""A person answers an invitation in headless Chromium: the real service on a real socket, the real stack.

Chromium is Debian's (`make browser` installs it); Playwright for Python drives it through
`executable_path`. Screenshots go to NTB_SCREENSHOT_DIR (`make screenshots` writes docs/screenshots/).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from shared.platform.auth import ApiKeyStore

from .conftest import organizer_client, scheduled_and_invited, tokens_by_seat

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def browser():
    playwright_api = pytest.importorskip("playwright.async_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make browser`")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("NTB_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def serve(app, runtime, port: int | None = None) -> tuple[uvicorn.Server, asyncio.Task, str]:
    app.state.api_keys = ApiKeyStore(runtime.pool, runtime.settings.api_key_pepper)
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}"


async def test_answer_change_delegate_and_cancelled_in_a_browser(start_service, clock, schema_for, topic_prefix, db,
                                                                 browser, shots):
    rt, app = await start_service()
    start = (clock.now + timedelta(days=10)).replace(microsecond=0)
    client, auth = await organizer_client(rt, app)
    server, task, base = await serve(app, rt)
    try:
        async with client:
            meeting_id = await scheduled_and_invited(client, auth, start)
            seats = await tokens_by_seat(db, schema_for("inv"), topic_prefix)
            _, token = seats[("52.05", "kepala_bpkad")]

            phone = await browser.new_page(viewport=PHONE, device_scale_factor=2)
            # The link as mailed (old /rsvp/ links redirect here too).
            await phone.goto(f"{base}/rsvp/{token}")
            assert phone.url == f"{base}/undangan/{token}"
            assert await phone.get_by_test_id("jawaban").inner_text() == "Belum dijawab"
            assert "Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan" in await phone.content()
            await phone.screenshot(path=shots / "rsvp-ponsel.png", full_page=True)

            await phone.get_by_label("Saya akan hadir").check()
            await phone.get_by_role("button", name="Simpan jawaban").click()
            await phone.wait_for_url("**tersimpan=1")
            assert await phone.get_by_test_id("jawaban").inner_text() == "Hadir"
            assert "Jawaban tersimpan" in await phone.get_by_role("status").inner_text()
            await phone.screenshot(path=shots / "rsvp-tersimpan-ponsel.png", full_page=True)

            # Changing to "not attending" without a reason is refused in Indonesian; with one it is saved.
            await phone.get_by_label("Saya tidak dapat hadir").check()
            await phone.get_by_role("button", name="Simpan jawaban").click()
            assert "alasan ketidakhadiran" in await phone.get_by_role("alert").inner_text()
            await phone.get_by_label("Alasan").fill("Bertugas ke Jakarta pada tanggal tersebut")
            await phone.get_by_role("button", name="Simpan jawaban").click()
            await phone.wait_for_url("**tersimpan=1")
            assert await phone.get_by_test_id("jawaban").inner_text() == "Tidak hadir"

            desktop = await browser.new_page(viewport=DESKTOP)
            await desktop.goto(f"{base}/undangan/{token}")
            await desktop.get_by_label("Saya menunjuk perwakilan").check()
            await desktop.get_by_label("Nama perwakilan").fill("Contoh Sekretaris BPKAD Dompu")
            await desktop.get_by_label("Jabatan").fill("Sekretaris BPKAD Kabupaten Dompu")
            await desktop.get_by_label("Surel dinas").fill("sekretaris.bpkad@dompukab.go.id")
            await desktop.get_by_role("button", name="Simpan jawaban").click()
            await desktop.wait_for_url("**tersimpan=1")
            assert await desktop.get_by_test_id("jawaban").inner_text() == "Diwakilkan"
            assert "Contoh Sekretaris BPKAD Dompu" in await desktop.content()
            await desktop.screenshot(path=shots / "rsvp-diwakilkan-desktop.png", full_page=True)
            row = await db.fetchrow(f'SELECT response FROM "{schema_for("inv")}".invitations '
                                    "WHERE region_code = '52.05' AND role = 'kepala_bpkad'")
            assert row["response"] == "delegated"

            r = await client.post(f"/meetings/{meeting_id}/cancel", headers=auth,
                                  json={"reason": "Bertepatan dengan kunjungan kerja Gubernur"})
            assert r.status_code == 200
            await phone.goto(f"{base}/undangan/{token}")
            assert await phone.get_by_role("heading", level=1).inner_text() == "Rapat dibatalkan"
            await phone.screenshot(path=shots / "rsvp-dibatalkan-ponsel.png", full_page=True)
    finally:
        server.should_exit = True
        await task
