"""Secrets come from the environment only and never reach a log line; contact data is masked."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
import structlog
from pydantic import SecretStr

from services.invitations.bootstrap import build
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from services.notifications.settings import NotificationsSettings
from shared.contracts.roles import Role
from shared.contracts.topics import INVITATIONS_EVENTS
from shared.platform.logging import configure_logging
from tests.integration.commitments.helpers import FakeClock
from tests.integration.conftest import DSN, eventually, http_client, issue_key, service_settings
from tests.integration.invitations.conftest import scheduled_and_invited, tokens_by_seat
from tests.integration.notifications import factories
from tests.integration.notifications.conftest import event_of, notif_settings, publish

RSVP_SECRET = "rsvp-secret-for-log-test-" + "q" * 20
SMTP_PASSWORD = "smtp-password-for-log-test"
WEBHOOK_SECRET = "webhook-secret-for-log-test"
DB_PASSWORD = "db-password-for-log-test"


def test_settings_read_secrets_from_the_environment_and_never_print_them(monkeypatch):
    """Secrets are SecretStr loaded from env variables; repr/str/model_dump_json of settings hide them."""
    monkeypatch.setenv("INVITATIONS_RSVP_SECRET", RSVP_SECRET)
    monkeypatch.setenv("NOTIFICATIONS_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("NOTIFICATIONS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://ntb:{DB_PASSWORD}@127.0.0.1:1/ntb")
    inv, notif = InvitationsSettings(), NotificationsSettings()
    assert inv.rsvp_secret.get_secret_value() == RSVP_SECRET
    assert notif.smtp_password.get_secret_value() == SMTP_PASSWORD
    assert notif.webhook_secret.get_secret_value() == WEBHOOK_SECRET
    assert DB_PASSWORD in inv.database_url.get_secret_value()
    for shown in (repr(inv), str(inv), inv.model_dump_json(), repr(notif), str(notif), notif.model_dump_json()):
        for secret in (RSVP_SECRET, SMTP_PASSWORD, WEBHOOK_SECRET, DB_PASSWORD):
            assert secret not in shown
    monkeypatch.setenv("NTB_ENV", "production")
    monkeypatch.delenv("INVITATIONS_RSVP_SECRET")
    with pytest.raises(ValueError, match="RSVP_SECRET"):
        InvitationsSettings()


@pytest.mark.integration
@pytest.mark.usefixtures("cleanup_schemas")
async def test_a_flow_with_keys_tokens_and_contacts_logs_none_of_them(topic_prefix, schema_for, db):
    """Every JSON log line of a keyed, tokened RSVP flow is free of keys, tokens, secrets, raw e-mails and phones."""
    configure_logging("security-test", level="DEBUG", json=True)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    schema = schema_for("inv")
    clock = FakeClock()
    rt, app = build(service_settings(InvitationsSettings, topic_prefix, schema, rsvp_secret=RSVP_SECRET), clock=clock)
    await rt.start()
    secrets: list[str] = [RSVP_SECRET]
    try:
        token = await issue_key(rt, Role.ORGANIZER)
        secrets += [token, token.split("_")[2]]
        auth = {"Authorization": f"Bearer {token}"}
        async with http_client(app, rt) as client:
            await scheduled_and_invited(client, auth, clock.now + timedelta(days=5))
            seats = await tokens_by_seat(db, schema, topic_prefix)
            _, rsvp = seats[("52.01", "sekda")]
            secrets.append(rsvp)
            r = await client.post(f"/rsvp/{rsvp}", json={"response": "delegated", "delegate": {
                "name": "Kabag Pemerintahan", "title": "Kepala Bagian",
                "email": "kabag.pemerintahan@lombokbaratkab.go.id", "phone": "+62 812-3456-7890"}})
            assert r.status_code == 200, r.text
            assert (await client.post("/meetings", json={}, headers={
                "Authorization": f"Bearer {token[:-3]}abc"})).status_code == 401
        structlog.get_logger("probe").info("probe", token=token, note=f"key {token} used")
    finally:
        await rt.stop()
        logging.getLogger().removeHandler(handler)
        logging.getLogger().handlers.clear()
    text = captured.getvalue()
    assert "invitation answered" in text  # the flow did log
    for secret in secrets:
        assert secret not in text, secret[:12]
    assert "kabag.pemerintahan@" not in text and "3456-7890" not in text
    print(f"\n[logs] {len(text.splitlines())} log lines checked against {len(secrets)} secret values")


def test_phone_numbers_keys_and_tokens_inside_text_are_masked():
    """mask_phone keeps prefix and last two digits; dates, amounts and ids are left alone."""
    from shared.platform.logging import _mask, mask_phone

    assert mask_phone("hubungi +62 812-3456-7890 segera") == "hubungi +62***90 segera"
    assert mask_phone("081234567890") == "0***90"
    for untouched in ("2026-11-26T13:04:26Z", "Rp3.024.000.000", "52.01", "offset 081", "id 0f8e2a"):
        assert mask_phone(untouched) == untouched
    masked = _mask("key ntbk_ab12_s3cr3t-x and link /rsvp/" + "a" * 32 + ".1790000000." + "B" * 43)
    assert "s3cr3t" not in masked and "B" * 43 not in masked and "ntbk_ab12_***" in masked


class LogCapture:
    """The production logging set-up (JSON lines, redaction) with an extra handler writing to memory."""

    def __enter__(self) -> io.StringIO:
        configure_logging("security-test", level="DEBUG", json=True)
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(self.handler)
        return self.buffer

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger().handlers.clear()


def test_exception_messages_and_foreign_tracebacks_are_redacted_too():
    """A traceback quoting a DSN password, an API key or an e-mail is scrubbed like any other value."""
    with LogCapture() as buffer:
        try:
            raise ConnectionError(f"cannot reach postgresql://ntb:{DB_PASSWORD}@db/ntb for sekda@dompukab.go.id "
                                  "with ntbk_ab12_s3cr3tvalue")
        except ConnectionError:
            structlog.get_logger("t").exception("structlog line")
            logging.getLogger("aiokafka.fake").exception("stdlib line")
    text = buffer.getvalue()
    assert text.count("Traceback") == 2 and "cannot reach" in text  # both tracebacks were rendered
    for leaked in (DB_PASSWORD, "sekda@dompukab.go.id", "s3cr3tvalue"):
        assert leaked not in text


@pytest.mark.integration
@pytest.mark.usefixtures("cleanup_schemas")
async def test_notification_sends_log_no_smtp_password_webhook_secret_or_db_password(
        topic_prefix, schema_for, db, run_id, smtp_server, webhook_listener):
    """SMTP login (refused), a signed webhook and a database role with its own password: none in the logs."""
    role = f"tsec_{run_id}"
    await db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'")
    await db.execute(f"GRANT CREATE ON DATABASE {DSN.rsplit('/', 1)[1]} TO {role}")
    dsn = DSN.replace("://ntb:ntb@", f"://{role}:{DB_PASSWORD}@")
    schema = schema_for("not")
    try:
        with LogCapture() as buffer:
            settings = notif_settings(topic_prefix, schema, smtp_server.port).model_copy(update={
                "database_url": SecretStr(dsn), "smtp_username": "notifikasi", "smtp_password": SecretStr(SMTP_PASSWORD),
                "webhook_secret": SecretStr(WEBHOOK_SECRET), "delivery_max_attempts": 2})
            rt, _ = build_notifications(settings)
            await rt.start()
            try:
                payload = factories.invitation(email="sekda.rahasia@dompukab.go.id",
                                               webhook_url=webhook_listener.url())
                await publish(topic_prefix + INVITATIONS_EVENTS, [event_of(payload)])
                table = f'"{schema}".deliveries'
                await eventually(lambda: db.fetchval(
                    f"SELECT count(*) = 2 FROM {table} WHERE status IN ('sent', 'failed')"), timeout=30)
                statuses = dict(await db.fetch(f"SELECT channel, status FROM {table}"))
            finally:
                await rt.stop()
        assert statuses == {"webhook": "sent", "email": "failed"}  # the test server offers no SMTP AUTH
        assert webhook_listener.received, "the webhook was sent (signed with the secret)"
        text = buffer.getvalue()
        assert "service started" in text
        for secret in (SMTP_PASSWORD, WEBHOOK_SECRET, DB_PASSWORD, "sekda.rahasia@"):
            assert secret not in text, secret
        print(f"\n[logs] notifications: {len(text.splitlines())} lines, no SMTP password, webhook secret, "
              f"database password or raw e-mail")
    finally:
        await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await db.execute(f"DROP OWNED BY {role} CASCADE")
        await db.execute(f"DROP ROLE {role}")
