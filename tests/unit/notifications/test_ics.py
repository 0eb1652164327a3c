"""The invitation's calendar entry follows RFC 5545."""

from datetime import UTC, datetime, timedelta, timezone

from services.notifications.ics import escape_text, fold, invitation_ics

WITA = timezone(timedelta(hours=8))


def entry(**overrides):
    args = dict(uid="inv-1@x", title="Rakor Perluasan Kepesertaan; BPJS, NTB", description="Agenda:\nKomitmen 2026",
                starts_at=datetime(2026, 12, 3, 9, 0, tzinfo=WITA), ends_at=datetime(2026, 12, 3, 12, 0, tzinfo=WITA),
                location="Pendopo Wagub, Mataram", url=None, organizer_name="Wakil Gubernur NTB",
                organizer_email="rakor@ntbprov.go.id", attendee_name="Sekda Dompu", attendee_email="sekda@dompukab.go.id",
                stamp=datetime(2026, 11, 1, tzinfo=UTC))
    return invitation_ics(**(args | overrides))


def test_request_with_uid_and_utc_times():
    """METHOD:REQUEST, the invitation id as UID, 09.00 WITA written as 01:00Z."""
    text = entry()
    assert "METHOD:REQUEST\r\n" in text and "UID:inv-1@x\r\n" in text
    assert "DTSTART:20261203T010000Z\r\n" in text and "DTEND:20261203T040000Z\r\n" in text
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")


def test_every_line_ends_with_crlf_and_fits_75_octets():
    """No bare LF; long lines folded with a leading space."""
    text = entry(description="x" * 300)
    assert "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert all(len(line.encode()) <= 75 for line in lines)
    assert any(line.startswith(" ") for line in lines)


def test_text_is_escaped():
    """Commas, semicolons and newlines in TEXT values are escaped."""
    assert escape_text("a;b,c\nd\\") == "a\\;b\\,c\\nd\\\\"
    assert "SUMMARY:Rakor Perluasan Kepesertaan\\; BPJS\\, NTB" in entry()


def test_folding_never_splits_a_utf8_character():
    """Unfolding a folded line restores it exactly."""
    line = "DESCRIPTION:" + "é" * 100
    folded = fold(line)
    assert folded.replace("\r\n ", "") == line
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))


def test_cancellation_keeps_the_uid_and_says_cancel():
    """A cancelled meeting removes the same entry: METHOD:CANCEL, STATUS:CANCELLED, a higher SEQUENCE."""
    text = entry(cancelled=True, sequence=7)
    assert "METHOD:CANCEL\r\n" in text and "STATUS:CANCELLED\r\n" in text
    assert "UID:inv-1@x\r\n" in text and "SEQUENCE:7\r\n" in text
