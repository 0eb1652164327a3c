"""The bytes of a notice e-mail, written directly: headers, text + HTML, the .ics if any.

The stdlib builds a message object, then a generator walks it, re-parses addresses and
folds every header through `email.header.Header`: ~1 ms a message, the sender's largest
CPU cost after the SMTP exchange itself (docs/performance.md, B4). The structure of a
notice never varies, so it is written here in one pass with the C encoders of `binascii`:

    multipart/mixed                      (only when there is a calendar)
      multipart/alternative
        text/plain; charset=utf-8        quoted-printable
        text/html; charset=utf-8         quoted-printable
      text/calendar; method=REQUEST      base64, keeps RFC 5545's CRLF line ends

Boundaries start with "=_": quoted-printable writes "=" as "=3D" and base64 never has
"_", so no body line can look like a boundary.
"""

from __future__ import annotations

import binascii
import functools
import re
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

# Inputs are validated at the edges (shared.contracts.text); a header value is still made one line
# without controls here, whatever it is given: a bare CR or LF would start a header of the sender's choosing.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def one_line(value: str) -> str:
    return _CONTROLS.sub("", " ".join(value.splitlines()))


def header_text(value: str) -> str:
    """A header value: as is when ASCII, else RFC 2047 encoded words (folded by Header)."""
    value = one_line(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def mailbox(name: str, address: str) -> str:
    """`Name <address>`, the name quoted or encoded as needed; line breaks in a name become spaces."""
    return formataddr((one_line(name), one_line(address)), charset="utf-8")


@functools.lru_cache(maxsize=8)
def sender_mailbox(sender: str) -> tuple[str, str]:
    """The From header and the envelope sender (bare address) of a configured `Name <address>`."""
    name, address = parseaddr(sender)
    return mailbox(name, address), address


def _qp(text: str) -> bytes:
    # istext: line breaks stay line breaks (CRLF on the wire); long lines get soft breaks at 76.
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), quotetabs=False, istext=True)
    return body.replace(b"\n", b"\r\n")


def _base64(data: bytes) -> bytes:
    return b"".join(binascii.b2a_base64(data[i:i + 57]).replace(b"\n", b"\r\n") for i in range(0, len(data), 57))


def _part(content_type: str, encoding: str, body: bytes, extra: str = "") -> bytes:
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n{extra}\r\n"
    # The CRLF before the next boundary belongs to the boundary: always add one, or the body's
    # own last line break would be taken by it.
    return head.encode("ascii") + body + b"\r\n"


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> tuple[str, bytes]:
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = b"".join(delimiter + part for part in parts) + f"--{boundary}--\r\n".encode("ascii")
    return f'multipart/{subtype}; boundary="{boundary}"', body


CALENDAR_FILENAMES = {"REQUEST": "undangan-rapat.ics", "CANCEL": "pembatalan-rapat.ics"}


def calendar_method(ics: str) -> str:
    """The METHOD of an iCalendar object (REQUEST when absent, as RFC 5546 assumes for an invitation)."""
    for raw in ics.split("\n"):
        line = raw.rstrip("\r")
        if line.upper().startswith("METHOD:"):
            value = line[7:].strip().upper()
            return value if value.isalpha() and len(value) <= 20 else "REQUEST"
        if line.upper().startswith("BEGIN:VEVENT"):
            break
    return "REQUEST"


def notice(*, message_id: str, date: datetime, sender: str, recipient_name: str, address: str, subject: str,
           text: str, html: str, ics: str | None, notification_id: str, boundary_seed: str,
           trace_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The whole message, CRLF line ends, ready for SMTP DATA.

    `trace_headers` (Traceparent, X-Correlation-ID) must be validated already (shared.platform.tracecontext)."""
    content_type, body = _multipart("alternative", f"=_alt_{boundary_seed}", [
        _part('text/plain; charset="utf-8"', "quoted-printable", _qp(text)),
        _part('text/html; charset="utf-8"', "quoted-printable", _qp(html)),
    ])
    if ics:
        # RFC 6047: the part's method= is the calendar's own METHOD (CANCEL for a cancellation), and
        # the file name tells a person what the attachment is before they open it.
        method = calendar_method(ics)
        filename = CALENDAR_FILENAMES.get(method, "jadwal-rapat.ics")
        calendar = _part(f'text/calendar; charset="utf-8"; method="{method}"', "base64", _base64(ics.encode("utf-8")),
                         f'Content-Disposition: attachment; filename="{filename}"\r\n')
        alternative = f"Content-Type: {content_type}\r\n\r\n".encode("ascii") + body
        content_type, body = _multipart("mixed", f"=_mix_{boundary_seed}", [alternative, calendar])
    headers = [
        ("Message-ID", message_id),
        ("Date", format_datetime(date)),
        ("From", sender_mailbox(sender)[0]),
        ("To", mailbox(recipient_name, address)),
        ("Subject", header_text(subject)),
        ("X-Notification-Id", notification_id),
        *trace_headers,
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", content_type),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("utf-8") + body
