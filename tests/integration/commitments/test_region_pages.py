"""The regency's page on the real stack: fill lines, see the calculator's figures, save a draft, submit,
see why it was returned, resubmit; through the same operations as the JSON API."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from shared.contracts.roles import Role

from .helpers import running
from .test_review_pages import FORM, act, session

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

LINE = {"budget_stage": "murni", "signatory_name": "Sekretaris Daerah Kabupaten Dompu",
        "legal_basis": "Perbup Dompu No. 7 Tahun 2025", "l0_segment": "pekerja_rentan_bpu", "l0_workers": "15000",
        "l0_months": "12", "l0_funding": "apbd_kabupaten_kota"}


async def post(client, who, **fields):
    page = await client.get("/komitmen", headers=who)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    return await client.post("/komitmen", content=urlencode({"csrf": csrf, "version": version} | fields),
                             headers=FORM | who)


async def test_draft_submit_return_resubmit_from_the_region_page(topic_prefix, schema_for, db):
    async with running(topic_prefix, schema_for("com")) as svc:
        client = svc.client
        dompu = (await svc.open("52.05"))["52.05"]
        operator = session(Role.REGION_OPERATOR, "52.05")
        page = await client.get("/komitmen", headers=operator)
        assert 'data-testid="status">belum disampaikan<' in page.text and "Kabupaten Dompu" in page.text

        # "Hitung" shows the calculator's figures and saves nothing.
        r = await post(client, operator, action="hitung", **LINE)
        assert r.status_code == 200 and "Rp16.800" in r.text and "Rp3.024.000.000" in r.text
        assert (await svc.client.get("/commitments/52.05", headers=await svc.auth(Role.ORGANIZER))).json()[
            "status"] == "requested"
        r = await post(client, operator, action="hitung", **LINE | {"l0_workers": "banyak"})
        assert r.status_code == 422 and "jumlah pekerja" in r.text

        r = await post(client, operator, action="konsep", **LINE)
        assert r.status_code == 303
        page = await client.get(r.headers["location"], headers=operator)
        assert "Konsep tersimpan" in page.text and 'value="15000"' in page.text
        r = await post(client, operator, action="sampaikan", **LINE)
        assert r.status_code == 303
        page = await client.get("/komitmen", headers=operator)
        assert "telah disampaikan, menunggu verifikasi" in page.text and "Rp3.024.000.000" in page.text

        disnaker = session(Role.DISNAKERTRANS_REVIEWER)
        r = await act(client, f"/tinjauan/{dompu}", disnaker, action="return",
                      reasons="Lampirkan Perbup yang ditandatangani\nJumlah bulan 11, bukan 12")
        assert r.status_code == 303
        page = await client.get("/komitmen", headers=operator)
        assert 'data-testid="alasan"' in page.text and "Lampirkan Perbup yang ditandatangani" in page.text
        # Sent twice from the same page (a second click before the first went through): submitted once,
        # and the second answer says it is already submitted rather than that something went wrong.
        page = await client.get("/komitmen", headers=operator)
        form = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text).group(1),
                "version": re.search(r'name="version" value="(\d+)"', page.text).group(1),
                "action": "sampaikan"} | LINE | {"l0_months": "11"}
        r = await client.post("/komitmen", content=urlencode(form), headers=FORM | operator)
        assert r.status_code == 303
        again = await client.post("/komitmen", content=urlencode(form), headers=FORM | operator)
        assert again.status_code in (409, 412) and "sudah disampaikan dan menunggu verifikasi" in again.text
        assert await db.fetchval(f'SELECT count(*) FROM "{schema_for("com")}".submissions') == 2
        state = (await svc.client.get("/commitments/52.05", headers=await svc.auth(Role.ORGANIZER))).json()
        assert state["status"] == "submitted" and state["revision"] == 2 and state["total_rp"] == 15000 * 11 * 16800

        # Reviewers are sent to their queue; without a session, to sign in.
        assert (await client.get("/komitmen", headers=disnaker)).headers["location"] == "/tinjauan"
        # A form sent after the session ended is not saved, and the page says why and how to go on.
        r = await client.post("/komitmen", content=urlencode(LINE | {"action": "konsep"}), headers=FORM)
        assert r.status_code == 401 and "Sesi Anda telah berakhir" in r.text and 'href="/masuk"' in r.text


async def test_past_the_deadline_the_page_says_so_and_still_takes_the_submission(topic_prefix, schema_for):
    async with running(topic_prefix, schema_for("com")) as svc:
        await svc.open("52.05")
        operator = session(Role.REGION_OPERATOR, "52.05")
        page = await svc.client.get("/komitmen", headers=operator)
        assert 'data-testid="terlambat"' not in page.text
        svc.clock.advance(timedelta(days=31))  # past the 30-day deadline while the form is open
        r = await post(svc.client, operator, action="sampaikan", **LINE)
        assert r.status_code == 303
        page = await svc.client.get("/komitmen", headers=operator)
        assert "telah disampaikan, menunggu verifikasi" in page.text and 'data-testid="terlambat"' not in page.text


async def test_a_late_draft_shows_the_deadline_passed_with_whom_to_call(topic_prefix, schema_for):
    async with running(topic_prefix, schema_for("com")) as svc:
        await svc.open("52.05")
        operator = session(Role.REGION_OPERATOR, "52.05")
        svc.clock.advance(timedelta(days=31))
        page = await svc.client.get("/komitmen", headers=operator)
        assert 'data-testid="terlambat"' in page.text and "Batas waktu telah lewat" in page.text
        assert "(0370) 625 270" in page.text and "WITA" in page.text


async def test_page_addresses_that_are_not_pages_answer_with_a_page(topic_prefix, schema_for):
    """A malformed id, an unknown query parameter or a path under a page: Indonesian pages, not JSON."""
    async with running(topic_prefix, schema_for("com")) as svc:
        reviewer = session(Role.DISNAKERTRANS_REVIEWER)
        for path, status in (("/tinjauan/bukan-uuid", 404), ("/tinjauan?halaman=2", 422),
                             ("/komitmen?selesai=a&selesai=b", 422), ("/tinjauan/x/y", 404), ("/dasbor/lain", 404)):
            r = await svc.client.get(path, headers=reviewer)
            assert r.status_code == status, path
            assert r.headers["content-type"].startswith("text/html") and "Nusa Tenggara Barat" in r.text, path
            assert "bukan-uuid" not in r.text, path
        for size in (300 * 1024, 2 * 1024 * 1024):  # over the app's body cap: a page too, for a page
            r = await svc.client.post("/komitmen", content=b"a=" + b"x" * size, headers=FORM | reviewer)
            assert r.status_code == 413 and "Isian formulir terlalu panjang" in r.text
        r = await svc.client.get("/commitments/bukan", headers=await svc.auth(Role.ORGANIZER))
        assert r.headers["content-type"].startswith("application/json")  # the API keeps its JSON errors
