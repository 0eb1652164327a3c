"""The RSVP page on the real stack: the mailed link opens Indonesian HTML; forms answer through the same command."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from .conftest import RESPONDED, organizer_client, scheduled_and_invited, tokens_by_seat

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

FORM = {"content-type": "application/x-www-form-urlencoded"}
HTML = {"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def post_form(client, token: str, csrf: str, **fields: str):
    return await client.post(f"/undangan/{token}", content=urlencode({"csrf": csrf, **fields}), headers=FORM)


async def test_answer_change_and_delegate_from_the_page(start_service, clock, schema_for, topic_prefix, db, published):
    rt, app = await start_service()
    start = (clock.now + timedelta(days=10)).replace(microsecond=0)
    client, auth = await organizer_client(rt, app)
    async with client:
        meeting_id = await scheduled_and_invited(client, auth, start)
        seats = await tokens_by_seat(db, schema_for("inv"), topic_prefix)
        issued = [e["payload"] for e in await published("ntb.invitations.invitation.issued.v1")]
        assert all("/undangan/" in e["rsvp_url"] for e in issued)
        _, token = seats[("52.01", "sekda")]

        # An old-style /rsvp/ link opened by a browser lands on the page; API clients still get JSON.
        r = await client.get(f"/rsvp/{token}", headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == f"/undangan/{token}"
        assert (await client.get(f"/rsvp/{token}")).json()["response"] is None
        page = await client.get(f"/undangan/{token}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Konfirmasi Kehadiran" in page.text and "Belum dijawab" in page.text
        assert "Pemerintah Provinsi Nusa Tenggara Barat" in page.text and "WITA" in page.text
        assert "Sekretaris Daerah Kabupaten Lombok Barat" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        csrf = csrf_of(page.text)

        r = await post_form(client, token, csrf, response="accepted")
        assert r.status_code == 303, r.text
        page = await client.get(r.headers["location"])
        assert "Jawaban tersimpan" in page.text and 'data-testid="jawaban">Hadir<' in page.text

        # Declining needs a reason; the refusal is in Indonesian and writes nothing.
        r = await post_form(client, token, csrf, response="declined", reason="")
        assert r.status_code == 422 and "alasan ketidakhadiran" in r.text
        assert (await client.get(f"/rsvp/{token}")).json()["response"] == "accepted"
        r = await post_form(client, token, csrf, response="declined", reason="Dinas luar daerah")
        assert r.status_code == 303
        assert "Dinas luar daerah" in (await client.get(f"/undangan/{token}")).text

        # Without a valid CSRF token nothing is written.
        for bad in ("", "1.abc", csrf[:-2] + "xx"):
            r = await post_form(client, token, bad, response="accepted")
            assert r.status_code == 400 and "Formulir kedaluwarsa" in r.text
        r = await client.post(f"/undangan/{token}", json={"response": "accepted"})
        assert r.status_code == 400
        assert (await client.get(f"/rsvp/{token}")).json()["response"] == "declined"

        # Delegation: a named deputy gets an invitation of their own.
        r = await post_form(client, token, csrf, response="delegated", delegate_name="Contoh Asisten I Lombok Barat",
                            delegate_title="Asisten Pemerintahan Kabupaten Lombok Barat",
                            delegate_email="asisten1@lombokbaratkab.go.id", delegate_phone="")
        assert r.status_code == 303, r.text
        page = (await client.get(f"/undangan/{token}")).text
        assert "Diwakilkan kepada <strong>Contoh Asisten I Lombok Barat</strong>" in page
        responses = [e["payload"]["response"] for e in await published(RESPONDED)]
        assert responses == ["accepted", "declined", "delegated"]
        # A personal address is refused, in Indonesian.
        _, other = seats[("52.02", "sekda")]
        r = await post_form(client, other, csrf_of((await client.get(f"/undangan/{other}")).text),
                            response="delegated", delegate_name="Orang Lain", delegate_title="Staf",
                            delegate_email="orang@gmail.com")
        assert r.status_code == 422 and "alamat dinas" in r.text

        # A tampered link gets an Indonesian page, not JSON.
        r = await client.get(f"/undangan/{token[:-3]}abc")
        assert r.status_code == 403 and "Tautan tidak sah" in r.text

        # Moved later: the link already mailed shows the new time (its own expiry has passed).
        new_start = start + timedelta(days=20)
        r = await client.post(f"/meetings/{meeting_id}/reschedule", headers=auth, json={
            "starts_at": new_start.isoformat(), "ends_at": (new_start + timedelta(hours=2)).isoformat()})
        assert r.status_code == 200, r.text
        clock.set(start + timedelta(days=1))
        page = await client.get(f"/undangan/{other}")
        assert page.status_code == 200 and "Jadwal rapat telah diubah" in page.text
        r = await post_form(client, other, csrf_of(page.text), response="accepted")
        assert r.status_code == 303, r.text

        # Past the deadline, then cancelled: clear pages.
        clock.set(new_start + timedelta(minutes=1))
        r = await client.get(f"/undangan/{other}")
        assert r.status_code == 410 and "Batas waktu konfirmasi telah lewat" in r.text
        clock.set(start + timedelta(days=1))
        r = await client.post(f"/meetings/{meeting_id}/cancel", headers=auth,
                              json={"reason": "Bertepatan dengan agenda nasional"})
        assert r.status_code == 200, r.text
        r = await client.get(f"/undangan/{other}")
        assert r.status_code == 410 and "Rapat dibatalkan" in r.text and "agenda nasional" in r.text
