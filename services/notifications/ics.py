"""An iCalendar (RFC 5545) invitation entry, written by hand: it is a few lines of text.

Times are written in UTC ('Z') so every calendar client places them right without a
VTIMEZONE block; clients show them in the reader's zone (WITA in NTB).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

CRLF = "\r\n"
PRODID = "-//Pemerintah Provinsi NTB//Rakor BPJS Ketenagakerjaan//ID"
# Inputs are validated at the edges (shared.contracts.text); this module still never lets a control
# character, a line separator or a stray quote into a content line, whatever it is given.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_URI = re.compile(r"^https?://[^\s\"'<>\\^`{|}\x00-\x1f\x7f-\x9f]+$")
_ADDRESS = re.compile(r"^[^\s\"<>()\\,;:\x00-\x1f\x7f-\x9f]+@[A-Za-z0-9.-]+$")


def _unix_breaks(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")


def escape_text(value: str) -> str:
    """TEXT values escape backslash, semicolon, comma and newlines (RFC 5545 3.3.11); other controls go."""
    value = _CONTROLS.sub("", _unix_breaks(value))
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def safe_uri(value: str | None) -> str | None:
    """An http(s) URI fit for a URI value or an href; anything else is left out."""
    return value if value and _URI.match(value) else None


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
    if safe_uri(url):
        lines.append(f"URL:{url}")
    if _ADDRESS.match(organizer_email):
        lines.append(f"ORGANIZER;CN={_param(organizer_name)}:mailto:{organizer_email}")
    if attendee_email and _ADDRESS.match(attendee_email):
        lines.append(f"ATTENDEE;CN={_param(attendee_name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:"
                     f"mailto:{attendee_email}")
    lines += ["STATUS:CANCELLED" if cancelled else "STATUS:CONFIRMED", "TRANSP:OPAQUE", "END:VEVENT",
              "END:VCALENDAR"]
    return CRLF.join(fold(line) for line in lines) + CRLF


def _param(value: str) -> str:
    """A quoted parameter value (CN): RFC 6868 caret encoding for '^' and '"', line breaks as spaces.

    Quoted, no ':;,' can end it early. Readers disagree on backslashes in parameters (RFC 5545 has
    no escape there, some libraries unescape '\\,'), so a backslash in a display name is written '/'.
    """
    cleaned = _CONTROLS.sub("", " ".join(_unix_breaks(value).replace("\t", " ").split("\n")))
    return '"' + cleaned.replace("^", "^^").replace('"', "^'").replace("\\", "/") + '"'
