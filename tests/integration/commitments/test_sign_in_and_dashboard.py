"""Sign-in from a mailed link and the province dashboard, on the real stack and a real SMTP server."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from shared.platform import web_session

from ..conftest import eventually
from .helpers import bpu_commitment, running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

FORM = {"content-type": "application/x-www-form-urlencoded"}
REVIEWER = "verifikator@disnakertrans.ntbprov.go.id"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def ask_link(client, address: str) -> int:
    page = await client.get("/masuk")
    r = await client.post("/masuk", content=urlencode({"csrf": csrf_of(page.text), "email": address}), headers=FORM)
    assert r.status_code == 200 and "Periksa kotak surel Anda" in r.text
    return r.status_code


async def link_in(smtp, address: str, count: int = 1) -> str:
    """The link in the latest sign-in mail to `address`, once the `count`th has arrived (mailed by a worker)."""
    await eventually(lambda: _value(len(smtp.handler.to(address)) >= count))
    mail = smtp.handler.to(address)[-1]
    return re.search(r"(http://\S+/masuk/[A-Za-z0-9_-]+)", mail.get_content()).group(1)


async def _value(value):
    return value


async def test_sign_in_from_a_mailed_link_and_see_the_dashboard_change(topic_prefix, schema_for, db, smtp_server):
    async with running(topic_prefix, schema_for("com"), smtp_port=smtp_server.port) as svc:
        client = svc.client
        # Not signed in: the dashboard sends the person to sign in.
        r = await client.get("/dasbor")
        assert r.status_code == 303 and r.headers["location"] == "/masuk"

        # An unknown address gets the same answer, and no mail.
        await ask_link(client, "orang.lain@gmail.com")
        assert smtp_server.handler.to("orang.lain@gmail.com") == []
        await ask_link(client, REVIEWER.upper())
        link = await link_in(smtp_server, REVIEWER)
        mail = smtp_server.handler.to(REVIEWER)[0]
        assert mail["Subject"] == "Tautan masuk Sistem Rakor NTB" and "WITA" in mail.get_content()
        path = link.split("://", 1)[1].split("/", 1)[1]
        token = path.rsplit("/", 1)[1]
        stored = await db.fetchval(f'SELECT token_hash FROM "{schema_for("com")}".sign_in_links')
        assert token not in stored  # only the hash is kept

        # Opening the link shows a button; a GET alone (a mail scanner) does not use the link up.
        page = await client.get(f"/{path}")
        assert page.status_code == 200 and "Konfirmasi masuk" in page.text
        assert (await client.get(f"/{path}")).status_code == 200
        # Without the form's CSRF token nothing happens.
        r = await client.post(f"/{path}", content="csrf=1.x", headers=FORM)
        assert r.status_code == 400 and "set-cookie" not in r.headers
        r = await client.post(f"/{path}", content=urlencode({"csrf": csrf_of(page.text)}), headers=FORM)
        assert r.status_code == 303 and r.headers["location"] == "/dasbor"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # development mode
        value = r.cookies[web_session.COOKIE]

        # Single use: the same link again is refused with an Indonesian page.
        client.cookies.clear()
        again = await client.post(f"/{path}", content=urlencode({"csrf": csrf_of(page.text)}), headers=FORM)
        assert again.status_code == 410 and "Tautan masuk tidak berlaku" in again.text

        client.cookies.set(web_session.COOKIE, value)
        board = await client.get("/dasbor")
        assert board.status_code == 200, board.text
        assert "Verifikator Disnakertrans NTB" in board.text and "<svg" in board.text
        assert 'data-testid="pekerja">0 orang' in board.text and "Rp0" in board.text
        assert "62,22%" in board.text and 'http-equiv="refresh"' in board.text

        # Dompu submits 15.000 workers: the dashboard shows it.
        await svc.open("52.05")
        assert (await svc.submit("52.05", bpu_commitment("52.05"))).status_code == 200
        board = await client.get("/dasbor")
        assert 'data-testid="pekerja">15.000 orang' in board.text
        assert 'data-testid="daerah">1 dari 10' in board.text and "Rp3.024.000.000" in board.text
        assert "telah disampaikan, menunggu verifikasi" in board.text and "submitted" not in board.text

        # A forged or expired cookie is no session.
        client.cookies.set(web_session.COOKIE, value[:-2] + "AA")
        assert (await client.get("/dasbor")).status_code == 303


async def test_an_expired_link_is_refused(topic_prefix, schema_for, db, smtp_server):
    async with running(topic_prefix, schema_for("com"), smtp_port=smtp_server.port) as svc:
        await ask_link(svc.client, REVIEWER)
        path = (await link_in(smtp_server, REVIEWER)).split("://", 1)[1].split("/", 1)[1]
        page = await svc.client.get(f"/{path}")
        svc.clock.advance(timedelta(minutes=16))
        assert (await svc.client.get(f"/{path}")).status_code == 410
        r = await svc.client.post(f"/{path}", content=urlencode({"csrf": csrf_of(page.text)}), headers=FORM)
        assert r.status_code == 410 and "set-cookie" not in r.headers
