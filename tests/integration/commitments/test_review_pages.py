"""Reviewer pages on the real stack: queue, audit trail, verify / return / acknowledge through the
same operations and role rules as the JSON API."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from services.commitments.settings import DEV_SESSION_SECRET
from shared.contracts.roles import Role
from shared.platform import web, web_session

from .helpers import bpu_commitment, running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

FORM = {"content-type": "application/x-www-form-urlencoded"}


def session(role: Role, region: str | None = None) -> dict[str, str]:
    cookie = web_session.issue(DEV_SESSION_SECRET.encode(), email=f"{role.value}@ntbprov.go.id", name=f"Staf {role.value}",
                               role=role, region_code=region, lifetime_seconds=3600)
    return {"cookie": f"{web_session.COOKIE}={cookie}"}


async def act(client, path: str, who: dict, **fields: str):
    page = await client.get(path, headers=who)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    version = re.search(r'name="version" value="(\d+)"', page.text)
    data = {"csrf": csrf.group(1) if csrf else "", "version": version.group(1) if version else ""} | fields
    return await client.post(path, content=urlencode(data), headers=FORM | who)


async def test_return_resubmit_verify_acknowledge_from_the_pages(topic_prefix, schema_for, db):
    async with running(topic_prefix, schema_for("com"), ) as svc:
        client = svc.client
        ids = await svc.open("52.05")
        dompu = ids["52.05"]
        assert (await svc.submit("52.05", bpu_commitment("52.05"))).status_code == 200
        disnaker, bpjs = session(Role.DISNAKERTRANS_REVIEWER), session(Role.BPJS_REVIEWER)

        queue = await client.get("/tinjauan", headers=disnaker)
        assert "Menunggu tindakan Anda (1)" in queue.text and "Kabupaten Dompu" in queue.text
        assert "Menunggu tindakan Anda (0)" in (await client.get("/tinjauan", headers=bpjs)).text
        page = await client.get(f"/tinjauan/{dompu}", headers=disnaker)
        assert "Pekerja rentan (Bukan Penerima Upah)" in page.text and "Rp3.024.000.000" in page.text
        assert "pekerja_rentan_bpu" not in page.text and "Verifikasi" in page.text

        # Returning needs reasons; with them it goes through the workflow.
        r = await act(client, f"/tinjauan/{dompu}", disnaker, action="return", reasons="")
        assert r.status_code == 422 and "alasan pengembalian" in r.text
        r = await act(client, f"/tinjauan/{dompu}", disnaker, action="return",
                      reasons="Lampirkan Perbup\nPerbaiki jumlah bulan")
        assert r.status_code == 303, r.text
        page = await client.get(r.headers["location"], headers=disnaker)
        assert "dikembalikan untuk perbaikan" in page.text and "Lampirkan Perbup" in page.text
        assert (await svc.client.get("/commitments/52.05", headers=await svc.auth(Role.ORGANIZER))).json()[
            "status"] == "returned"

        assert (await svc.submit("52.05", bpu_commitment("52.05"))).status_code == 200
        # BPJS may not verify: the workflow refuses, nothing changes.
        # (the page offers BPJS no such form: the request is forged with a valid CSRF token of its own)
        forged = web.csrf_token(DEV_SESSION_SECRET.encode(),
                                f"{web_session.subject_of('bpjs_reviewer@ntbprov.go.id')}:{dompu}")
        r = await client.post(f"/tinjauan/{dompu}", content=urlencode({"csrf": forged, "action": "verify"}),
                              headers=FORM | bpjs)
        assert r.status_code == 403 and "tidak dapat melakukan" in r.text
        r = await act(client, f"/tinjauan/{dompu}", disnaker, action="verify", note="Lengkap")
        assert r.status_code == 303
        r = await act(client, f"/tinjauan/{dompu}", bpjs, action="acknowledge")
        assert r.status_code == 303
        page = await client.get(f"/tinjauan/{dompu}", headers=bpjs)
        assert 'data-testid="status">telah diterima BPJS Ketenagakerjaan<' in page.text
        assert page.text.count("<tr><td>") >= 6  # the audit trail: opened, submitted, returned, ... acknowledged

        # A stale form (its version) and a forged CSRF token are refused; another region sees nothing.
        r = await client.post(f"/tinjauan/{dompu}", content=urlencode({"csrf": "1.x", "action": "verify"}),
                              headers=FORM | disnaker)
        assert r.status_code == 400
        other = session(Role.REGION_OPERATOR, "52.01")
        assert (await client.get(f"/tinjauan/{dompu}", headers=other)).status_code == 404
        assert (await client.get(f"/tinjauan/{dompu}")).status_code == 303
