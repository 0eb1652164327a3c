"""Draft, submit, return, resubmit, verify and acknowledge, clicked through in headless Chromium by the
regency operator and the two reviewers, against the real service on a real socket and the real stack."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import uvicorn

from services.commitments.settings import DEV_SESSION_SECRET
from shared.contracts.roles import Role
from shared.platform import web_session

from .helpers import running
from .test_dashboard_browser import ARGS, CHROMIUM, free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def signed_in_page(browser, base: str, role: Role, region: str | None = None, **viewport):
    context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    cookie = web_session.issue(DEV_SESSION_SECRET.encode(), email=f"{role.value}@ntbprov.go.id",
                               name={"region_operator": "Operator Kabupaten Dompu",
                                     "disnakertrans_reviewer": "Verifikator Disnakertrans NTB",
                                     "bpjs_reviewer": "Kepesertaan BPJS Ketenagakerjaan NTB"}[role.value],
                               role=role, region_code=region, lifetime_seconds=3600)
    await context.add_cookies([{"name": web_session.COOKIE, "value": cookie, "url": base}])
    return await context.new_page()


async def test_region_and_reviewers_work_a_commitment_in_a_browser(topic_prefix, schema_for, tmp_path):
    playwright_api = pytest.importorskip("playwright.async_api")
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make browser`")
    shots = Path(os.environ.get("NTB_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running(topic_prefix, schema_for("com")) as svc:
        server = uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        try:
            await svc.open("52.05")
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                region = await signed_in_page(browser, base, Role.REGION_OPERATOR, "52.05",
                                              width=390, height=844)
                await region.goto(f"{base}/komitmen")
                await region.get_by_label("Penandatangan").fill("Sekretaris Daerah Kabupaten Dompu")
                await region.get_by_label("Dasar hukum (Perbup/Perwali)").fill("Perbup Dompu No. 7 Tahun 2025")
                await region.locator("#l0_segment").select_option("pekerja_rentan_bpu")
                await region.locator("#l0_workers").fill("15000")
                await region.get_by_role("button", name="Hitung").click()
                assert "Rp3.024.000.000" in await region.get_by_test_id("hitungan").inner_text()
                await region.screenshot(path=shots / "komitmen-hitung-ponsel.png", full_page=True)
                await region.get_by_role("button", name="Simpan konsep").click()
                await region.wait_for_url("**selesai=konsep")
                await region.get_by_role("button", name="Sampaikan").click()
                await region.wait_for_url("**selesai=sampaikan")
                assert await region.get_by_test_id("status").inner_text() == "telah disampaikan, menunggu verifikasi"

                disnaker = await signed_in_page(browser, base, Role.DISNAKERTRANS_REVIEWER)
                await disnaker.goto(f"{base}/tinjauan")
                await disnaker.screenshot(path=shots / "tinjauan-antrean-desktop.png", full_page=True)
                await disnaker.get_by_role("link", name="Buka").click()
                await disnaker.get_by_label("Alasan pengembalian (satu per baris)").fill("Lampirkan Perbup yang ditandatangani")
                await disnaker.get_by_role("button", name="Kembalikan untuk perbaikan").click()
                await disnaker.wait_for_url("**selesai=return")
                assert await disnaker.get_by_test_id("status").inner_text() == "dikembalikan untuk perbaikan"

                await region.goto(f"{base}/komitmen")
                assert "Lampirkan Perbup yang ditandatangani" in await region.get_by_test_id("alasan").inner_text()
                await region.screenshot(path=shots / "komitmen-dikembalikan-ponsel.png", full_page=True)
                await region.get_by_role("button", name="Sampaikan").click()
                await region.wait_for_url("**selesai=sampaikan")

                await disnaker.reload()
                await disnaker.get_by_role("button", name="Verifikasi").click()
                await disnaker.wait_for_url("**selesai=verify")
                bpjs = await signed_in_page(browser, base, Role.BPJS_REVIEWER)
                await bpjs.goto(f"{base}/tinjauan")
                await bpjs.get_by_role("link", name="Buka").click()
                await bpjs.get_by_role("button", name="Terima komitmen").click()
                await bpjs.wait_for_url("**selesai=acknowledge")
                assert await bpjs.get_by_test_id("status").inner_text() == "telah diterima BPJS Ketenagakerjaan"
                await bpjs.screenshot(path=shots / "tinjauan-diterima-desktop.png", full_page=True)
                await browser.close()
        finally:
            server.should_exit = True
            await task
