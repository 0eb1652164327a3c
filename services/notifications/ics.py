"""An iCalendar (RFC 5545) invitation entry, written by hand: it is a few lines of text.

Times are written in UTC ('Z') so every calendar client places them right without a
VTIMEZONE block; clients show them in the reader's zone (WITA in NTB).
"""

from __future__ import annotations

from datetime import UTC, datetime

CRLF = "\r\n"
PRODID = "-//Pemerintah Provinsi NTB//Rakor BPJS Ketenagakerjaan//ID"


def escape_text(value: str) -> str:
    """TEXT values escape backslash, semicolon, comma and newlines (RFC 5545 3.3.11)."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """Fold a content line at 75 octets, continuation lines starting with one space (RFC 5545 3.1)."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return line
    parts: list[str] = []
    limit = 75
    while raw:
        cut = min(limit, len(raw))
        while cut < len(raw) and (raw[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            cut -= 1
        parts.append(raw[:cut].decode("utf-8"))
        raw = raw[cut:]
        limit = 74  # the leading space counts
    return (CRLF + " ").join(parts)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def invitation_ics(
    *,
    uid: str,
    title: str,
    description: str,
    starts_at: datetime,
    ends_at: datetime,
    location: str | None,
    url: str | None,
    organizer_name: str,
    organizer_email: str,
    attendee_name: str,
    attendee_email: str | None,
    stamp: datetime,
    sequence: int = 0,
    cancelled: bool = False,
) -> str:
    """A METHOD:REQUEST calendar with one VEVENT whose UID is the invitation id (CANCEL when called off).

    An update keeps the UID and raises SEQUENCE, so calendars move the entry instead of adding one.
    """
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:CANCEL" if cancelled else "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"SEQUENCE:{sequence}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(starts_at)}",
        f"DTEND:{_utc(ends_at)}",
        f"SUMMARY:{escape_text(title)}",
        f"DESCRIPTION:{escape_text(description)}",
    ]
    if location:
        lines.append(f"LOCATION:{escape_text(location)}")
    if url:
        lines.append(f"URL:{url}")
    lines.append(f"ORGANIZER;CN={_param(organizer_name)}:mailto:{organizer_email}")
    if attendee_email:
        lines.append(f"ATTENDEE;CN={_param(attendee_name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:"
                     f"mailto:{attendee_email}")
    lines += ["STATUS:CANCELLED" if cancelled else "STATUS:CONFIRMED", "TRANSP:OPAQUE", "END:VEVENT",
              "END:VCALENDAR"]
    return CRLF.join(fold(line) for line in lines) + CRLF


def _param(value: str) -> str:
    # Parameter values with ':;,' must be quoted; quotes themselves are not allowed.
    cleaned = value.replace('"', "'")
    return f'"{cleaned}"' if any(c in cleaned for c in ":;,") else cleaned
