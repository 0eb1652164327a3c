"""A reviewer signs in from the mailed link in headless Chromium and watches the dashboard change.

Real service on a real socket, real stack, real SMTP server; screenshots to NTB_SCREENSHOT_DIR.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
import uvicorn

from .helpers import bpu_commitment, running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REVIEWER = "verifikator@disnakertrans.ntbprov.go.id"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_sign_in_from_the_mailed_link_and_see_the_dashboard_change(topic_prefix, schema_for, smtp_server,
                                                                         tmp_path):
    playwright_api = pytest.importorskip("playwright.async_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make browser`")
    shots = Path(os.environ.get("NTB_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running(topic_prefix, schema_for("com"), smtp_port=smtp_server.port, public_base_url=base) as svc:
        server = uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", port=port, log_config=None,
                                               lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        try:
            await svc.open("52.01", "52.05", "52.72")
            assert (await svc.submit("52.01", bpu_commitment("52.01", workers=9_000))).status_code == 200
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                await page.goto(f"{base}/dasbor")
                assert page.url == f"{base}/masuk"
                await page.screenshot(path=shots / "masuk-ponsel.png", full_page=True)
                await page.get_by_label("Alamat surel dinas").fill(REVIEWER)
                await page.get_by_role("button", name="Kirim tautan masuk").click()
                assert "Periksa kotak surel Anda" in await page.get_by_role("status").inner_text()

                # The link from the e-mail the reviewer received.
                for _ in range(100):
                    if smtp_server.handler.to(REVIEWER):
                        break
                    await asyncio.sleep(0.1)
                link = re.search(r"(http://\S+/masuk/[A-Za-z0-9_-]+)",
                                 smtp_server.handler.to(REVIEWER)[0].get_content()).group(1)
                await page.goto(link)
                await page.get_by_role("button", name="Masuk").click()
                await page.wait_for_url(f"{base}/dasbor")
                assert await page.get_by_test_id("pekerja").inner_text() == "9.000 orang"
                assert await page.get_by_test_id("daerah").inner_text() == "1 dari 10"

                # Dompu submits; the dashboard (which reloads itself) shows it.
                assert (await svc.submit("52.05", bpu_commitment("52.05"))).status_code == 200
                await page.reload()
                assert await page.get_by_test_id("pekerja").inner_text() == "24.000 orang"
                assert await page.get_by_test_id("anggaran").inner_text() == "Rp4.838.400.000"
                await page.screenshot(path=shots / "dasbor-ponsel.png", full_page=True)
                # On a phone nothing spills sideways (wide tables scroll inside their card), the coverage
                # figures say what they count, and the reviewer is one tap from the queue.
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                last = page.get_by_role("columnheader", name="Terealisasi")
                await last.scroll_into_view_if_needed()
                box = await last.bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # reachable, not cut off
                assert "peserta yang telah terdaftar" in await page.get_by_test_id("cakupan-dasar").inner_text()
                await page.get_by_role("link", name="Antrean tinjauan").click()
                await page.wait_for_url(f"{base}/tinjauan")
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                desktop = await browser.new_page(viewport={"width": 1280, "height": 900})
                await desktop.context.add_cookies(await page.context.cookies())
                await desktop.goto(f"{base}/dasbor")
                await desktop.screenshot(path=shots / "dasbor-desktop.png", full_page=True)

                # The same link a second time is refused.
                await desktop.goto(link)
                assert await desktop.get_by_role("heading", level=1).inner_text() == "Tautan masuk tidak berlaku"
                await browser.close()
        finally:
            server.should_exit = True
            await task
