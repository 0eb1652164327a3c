"""The hand-written notice e-mail parses back to exactly what was rendered, whatever the text."""

import email
import email.policy
import uuid
from datetime import UTC, datetime

from hypothesis import given, settings, strategies as st

from services.notifications import mime

# Text as templates produce it: any printable Unicode, tabs, newlines, leading dots, long lines.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t"), max_size=400)
# Names and subjects: control characters are refused at the edges and dropped here (see below).
NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(lambda v: v.split())


def build(**overrides):
    fields = dict(message_id="<x@d.x>", date=datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC),
                  sender="Notifikasi Rakor NTB <notifikasi@disnakertrans.ntbprov.go.id>",
                  recipient_name="Sekda Dompu", address="sekda@dompukab.go.id", subject="Undangan Rakor",
                  text="Yth. Sekda\n", html="<p>Yth.</p>\n", ics=None, notification_id=str(uuid.UUID(int=1)),
                  boundary_seed=uuid.UUID(int=1).hex)
    fields.update(overrides)
    raw = mime.notice(**fields)
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, html=TEXT, subject=NAME, name=NAME)
def test_bodies_subject_and_name_round_trip_exactly(text, html, subject, name):
    """Whatever the rendered text (accents, long lines, '=', dots, tabs), the reader gets it back unchanged."""
    subject = " ".join(subject.split()) or "x"
    raw, msg = build(text=text, html=html, subject=subject, recipient_name=name)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))  # RFC 5322 hard limit
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert msg["Subject"] == subject
    assert msg["To"].addresses[0].addr_spec == "sekda@dompukab.go.id"
    # The reader sees the same words (a parser may fold runs of spaces).
    assert msg["To"].addresses[0].display_name.split() == name.split()


def test_a_line_break_in_a_name_or_subject_cannot_add_a_header():
    """A recipient name with CR/LF (directory data) never starts a header of its own."""
    raw, msg = build(recipient_name="Evil\r\nBcc: victim@example.com", subject="Hi\r\nBcc: victim@example.com")
    assert msg["Bcc"] is None and b"\r\nBcc:" not in raw
    raw, msg = build(recipient_name="Evil\x1b[2J\x00\x85Name", subject="Hi\x00\x1b\x9bthere")
    assert msg["To"].addresses[0].display_name == "Evil[2J Name" and msg["Subject"] == "Hithere"


def test_headers_and_structure():
    """Message-ID, X-Notification-Id, Auto-Submitted, an encoded non-ASCII subject; alternative inside mixed."""
    _, msg = build(subject="Komitmen — Rp3.024.000.000", ics="BEGIN:VCALENDAR\r\nX:é\r\nEND:VCALENDAR\r\n")
    assert msg["Message-ID"] == "<x@d.x>" and msg["X-Notification-Id"] == str(uuid.UUID(int=1))
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Subject"] == "Komitmen — Rp3.024.000.000"
    assert msg["From"].addresses[0].addr_spec == "notifikasi@disnakertrans.ntbprov.go.id"
    assert msg["Date"].datetime == datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
    calendar = list(msg.walk())[-1]
    assert calendar.get_content() == "BEGIN:VCALENDAR\r\nX:é\r\nEND:VCALENDAR\r\n"
    assert not msg.defects and all(not part.defects for part in msg.walk())


def test_envelope_sender_is_the_bare_address():
    """MAIL FROM gets the address of the configured `Name <address>`."""
    assert mime.sender_mailbox("Notifikasi Rakor NTB <n@ntbprov.go.id>") == (
        "Notifikasi Rakor NTB <n@ntbprov.go.id>", "n@ntbprov.go.id")
