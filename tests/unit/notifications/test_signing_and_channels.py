"""Webhook signatures and how channel errors are classified."""

import email
import email.policy
import uuid
from datetime import UTC, datetime

import aiosmtplib

from services.notifications.channels import build_email, classify_http, webhook_body
from services.notifications.deliveries import Delivery
from services.notifications.signing import sign, verify
from shared.contracts.notifications import Channel
from shared.platform.smtp import classify as classify_smtp


def test_signature_verifies_and_detects_tampering():
    """The receiver's check accepts the signed body and refuses a changed one or a stale timestamp."""
    body = b'{"a":1}'
    sig = sign("s3cret", 1_700_000_000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify("s3cret", 1_700_000_000, body, sig, now=1_700_000_010)
    assert not verify("s3cret", 1_700_000_000, b'{"a":2}', sig, now=1_700_000_010)
    assert not verify("other", 1_700_000_000, body, sig, now=1_700_000_010)
    assert not verify("s3cret", 1_700_000_000, body, sig, now=1_700_009_999)


def test_smtp_4xx_and_connection_errors_are_transient_5xx_permanent():
    """A greylisting 451 retries, a 550 gives up, a refused connection retries."""
    assert classify_smtp(aiosmtplib.SMTPResponseException(451, "try later")).outcome == "transient"
    assert classify_smtp(aiosmtplib.SMTPResponseException(554, "no")).outcome == "permanent"
    refused = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.id")])
    result = classify_smtp(refused)
    assert result.outcome == "permanent" and "550" in result.detail
    assert classify_smtp(aiosmtplib.SMTPConnectError("refused")).outcome == "transient"
    assert classify_smtp(ConnectionRefusedError()).outcome == "transient"


def test_http_statuses():
    """2xx sent; 5xx, 408 and 429 retried; other 4xx permanent."""
    assert classify_http(202).sent
    assert [classify_http(s).outcome for s in (500, 503, 408, 429)] == ["transient"] * 4
    assert [classify_http(s).outcome for s in (400, 401, 404, 410)] == ["permanent"] * 4


def row(**overrides):
    return Delivery(**{"delivery_id": uuid.UUID(int=7), "created_at": datetime(2026, 12, 1, tzinfo=UTC),
                       "recipient_name": "Sekda Dompu", "address": "sekda@dompukab.go.id", "subject": "Undangan",
                       "text_body": "Teks", "html_body": "<p>HTML</p>", "ics": None, "source_event_id": "e1",
                       "source_event_type": "t.v1", "recipient_id": "r1", "correlation_id": None,
                       "channel": Channel.EMAIL, "template": "t"} | overrides)


def test_email_carries_a_stable_message_id_and_the_ics():
    """Message-ID is derived from the delivery id; the calendar part says method=REQUEST; retries send the same bytes."""
    raw = build_email(row(ics="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"), sender="N <n@ntbprov.go.id>", domain="d.x")
    assert raw == build_email(row(ics="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"), sender="N <n@ntbprov.go.id>",
                              domain="d.x")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Message-ID"] == f"<{uuid.UUID(int=7)}@d.x>"
    assert not msg.defects and all(not part.defects for part in msg.walk())
    parts = [p.get_content_type() for p in msg.walk()]
    assert "text/plain" in parts and "text/html" in parts and "text/calendar" in parts
    calendar = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REQUEST" and calendar.get_filename() == "undangan-rapat.ics"
    assert calendar.get_content() == "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"  # CRLF kept byte for byte


def test_a_cancellation_says_method_cancel_in_its_mime_part():
    """RFC 6047: the part's method= matches the calendar's METHOD; the file name says it is a cancellation."""
    ics = "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    msg = email.message_from_bytes(build_email(row(ics=ics), sender="N <n@ntbprov.go.id>", domain="d.x"),
                                   policy=email.policy.default)
    calendar = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "CANCEL" and calendar.get_filename() == "pembatalan-rapat.ics"


def test_webhook_body_is_deterministic():
    """Retries of one delivery send the same bytes (same signature input, same idempotency key)."""
    assert webhook_body(row()) == webhook_body(row())
    assert b'"delivery_id":"00000000-0000-0000-0000-000000000007"' in webhook_body(row())
