"""Sign-in mail is durable: a relay that is down, a restart, and an authenticating relay.

The real service on the real PostgreSQL; the relay is aiosmtpd on a free port (started late to
play one that comes back, and with AUTH to check the login settings).
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from aiosmtpd.smtp import AuthResult

from tests.integration.notifications.conftest import SmtpServer, free_port

from ..conftest import eventually
from .helpers import running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

FORM = {"content-type": "application/x-www-form-urlencoded"}
REVIEWER = "verifikator@disnakertrans.ntbprov.go.id"
FAST = dict(sign_in_mail_poll_seconds=0.1, sign_in_mail_backoff_base_seconds=0.1,
            sign_in_mail_backoff_max_seconds=0.3, smtp_timeout_seconds=2, sign_in_mail_lease_seconds=10,
            smtp_starttls=False)


async def _v(value):
    return value


def delivered(svc, relay, address: str):
    async def check():
        svc.clock.advance(timedelta(seconds=1))
        return relay.handler.to(address)
    return check


def retried(svc, db, schema: str, attempts: int = 2):
    """A check for `eventually`: the service's clock moves a second per look, so backoffs fall due."""
    async def check():
        svc.clock.advance(timedelta(seconds=1))
        return await db.fetchrow(f'SELECT * FROM "{schema}".sign_in_links WHERE mail_attempts >= $1', attempts)
    return check


async def ask(client, address: str) -> None:
    page = await client.get("/masuk")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = await client.post("/masuk", content=urlencode({"csrf": csrf, "email": address}), headers=FORM)
    assert r.status_code == 200 and "Periksa kotak surel Anda" in r.text


async def test_a_link_asked_while_the_relay_is_down_arrives_after_a_restart(topic_prefix, schema_for, db,
                                                                            capfd):
    schema = schema_for("com")
    relay = SmtpServer(free_port())  # not started: the relay is down
    async with running(topic_prefix, schema, smtp_port=relay.port, **FAST) as svc:
        await ask(svc.client, REVIEWER)
        row = await eventually(retried(svc, db, schema))
        assert row["mail_state"] == "pending" and row["mail_error"].startswith("SMTP unavailable")
        assert REVIEWER not in row["mail_error"]
    # Stopped with the mail still pending; the relay comes back; a new process mails it.
    relay.start()
    try:
        async with running(topic_prefix, schema, smtp_port=relay.port, **FAST) as svc:
            await eventually(delivered(svc, relay, REVIEWER))
            [mail] = relay.handler.to(REVIEWER)
            link = re.search(r"http://\S+(/masuk/[A-Za-z0-9_-]+)", mail.get_content()).group(1)
            page = await svc.client.get(link)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            r = await svc.client.post(link, content=urlencode({"csrf": csrf}), headers=FORM)
            assert r.status_code == 303 and r.headers["location"] == "/dasbor"
            state = await db.fetchrow(f'SELECT mail_state, mail_attempts, used_at FROM "{schema}".sign_in_links')
            assert state["mail_state"] == "sent" and state["mail_attempts"] >= 3 and state["used_at"]
            token = link.rsplit("/", 1)[1]
            stored = await db.fetch(f'SELECT * FROM "{schema}".sign_in_links')
            assert token not in repr([dict(r) for r in stored])  # the token is rebuilt, never stored
    finally:
        relay.stop()
    logged = "".join(capfd.readouterr())
    assert REVIEWER not in logged and token not in logged
    assert "sign-in link not mailed yet; will retry" in logged and "sign-in link mailed" in logged


async def test_the_relay_login_is_used_and_a_wrong_password_keeps_the_mail_queued(topic_prefix, schema_for, db):
    schema = schema_for("com")
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        text = [v.decode() if isinstance(v, bytes) else v for v in (auth_data.login, auth_data.password)]
        logins.append(tuple(text))
        return AuthResult(success=text[1] == "relay-password-of-the-province")

    relay = SmtpServer(free_port(), authenticator=authenticator, auth_require_tls=False, auth_required=True)
    relay.start()
    try:
        async with running(topic_prefix, schema, smtp_port=relay.port, smtp_username="rakor",
                           smtp_password="a-wrong-password", **FAST) as svc:
            await ask(svc.client, REVIEWER)
            row = await eventually(retried(svc, db, schema))
            # Refused (aiosmtpd then stops answering that session): kept for the next try, no password quoted.
            assert row["mail_state"] == "pending" and row["mail_error"].startswith("SMTP")
            assert "wrong-password" not in row["mail_error"]
            assert relay.handler.to(REVIEWER) == []
        async with running(topic_prefix, schema, smtp_port=relay.port, smtp_username="rakor",
                           smtp_password="relay-password-of-the-province", **FAST) as svc:
            await eventually(delivered(svc, relay, REVIEWER))
        assert ("rakor", "relay-password-of-the-province") in logins
        assert len(relay.handler.to(REVIEWER)) == 1
        assert await db.fetchval(f'SELECT mail_state FROM "{schema}".sign_in_links') == "sent"
    finally:
        relay.stop()


async def test_a_notice_link_opened_before_signing_in_leads_back_to_it(topic_prefix, schema_for):
    """/tinjauan/<id> from a notice -> sign in -> the mailed link -> that same page (and nowhere else)."""
    relay = SmtpServer(free_port())
    relay.start()
    try:
        async with running(topic_prefix, schema_for("com"), smtp_port=relay.port, **FAST) as svc:
            commitment = (await svc.open("52.05"))["52.05"]
            r = await svc.client.get(f"/tinjauan/{commitment}")
            assert r.status_code == 303 and r.headers["location"] == f"/masuk?lanjut=/tinjauan/{commitment}"
            page = await svc.client.get(r.headers["location"])
            assert f'name="lanjut" value="/tinjauan/{commitment}"' in page.text
            for lanjut, expected in ((f"/tinjauan/{commitment}", f"/tinjauan/{commitment}"),
                                     ("//evil.example/x", "/dasbor"), ("https://evil.example", "/dasbor"),
                                     ("/tinjauan/../keluar", "/dasbor")):
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
                count = len(relay.handler.to(REVIEWER))
                r = await svc.client.post("/masuk", content=urlencode({"csrf": csrf, "email": REVIEWER,
                                                                       "lanjut": lanjut}), headers=FORM)
                assert r.status_code == 200
                await eventually(lambda count=count: _v(len(relay.handler.to(REVIEWER)) > count))
                link = re.search(r"http://\S+(/masuk/[A-Za-z0-9_-]+)",
                                 relay.handler.to(REVIEWER)[-1].get_content()).group(1)
                confirm = await svc.client.get(link)
                csrf2 = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)
                r = await svc.client.post(link, content=urlencode({"csrf": csrf2}), headers=FORM)
                assert r.status_code == 303 and r.headers["location"] == expected, lanjut
    finally:
        relay.stop()
