"""SMTP transactions with PIPELINING (RFC 2920) over a connection that aiosmtplib set up (every mail the project sends).

aiosmtplib connects, says EHLO, upgrades with STARTTLS and logs in, and we keep it for that.
It sends one command per round trip, and its reply reader holds one reply at a time (replies
that arrive together are dropped), so it cannot pipeline. Once the session is set up this
module takes the transport over (`set_protocol`) with a reader that queues every reply, and
runs each transaction as

    MAIL FROM, RCPT TO (each recipient), DATA     one write when the server offers PIPELINING
    the message, dot-stuffed, then "."           one write

reading the replies in the order the commands were sent: two round trips per e-mail instead
of four. Without PIPELINING every command waits for its reply (RFC 5321). Failures raise
aiosmtplib's own exceptions (`SMTPSenderRefused`, `SMTPRecipientsRefused` naming every
refused recipient, `SMTPDataError`, `SMTPServerDisconnected`, `SMTPReadTimeoutError`), so
callers classify them as before; recipients refused while others were accepted are returned.
A transaction cut short (timeout, lost connection, cancellation) leaves the connection in an
unknown state: it is closed, never reused.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import aiosmtplib
from aiosmtplib import (
    SMTPDataError,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

MAX_REPLY = 64 * 1024
# An envelope address goes on the command line as <address>: no controls, spaces or brackets
# (a CR or LF would start a command of the sender's choosing).
_NOT_IN_ENVELOPE = re.compile(r"[\x00-\x20<>\x7f]")
_LINE_END = re.compile(rb"\r\n|\r|\n")


class Reply(NamedTuple):
    code: int
    text: str


class _Replies(asyncio.Protocol):
    """Every reply the server sends, queued in order (multi-line replies joined)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                self._fail(SMTPResponseException(-1, "malformed SMTP reply line"))
                return
            self._lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                self._replies.append(Reply(int(line[:3]), "\n".join(self._lines)))
                self._lines = []
        if len(self._buffer) > MAX_REPLY or sum(map(len, self._lines)) > MAX_REPLY:
            self._fail(SMTPResponseException(-1, "SMTP reply too long"))
        self._wake()

    def _fail(self, exc: Exception) -> None:
        self.error = self.error or exc
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SMTPServerDisconnected("Connection lost"))

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, timeout: float) -> Reply:
        """The next reply in order; replies already received are returned even after a disconnect."""
        while not self._replies:
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError as exc:
                raise SMTPReadTimeoutError("Timed out waiting for server response") from exc
            finally:
                self._waiter = None
        return self._replies.popleft()


def envelope_address(address: str) -> str:
    """`<address>` for MAIL FROM / RCPT TO; ValueError when it cannot be sent safely."""
    if not address or _NOT_IN_ENVELOPE.search(address):
        raise ValueError("address not usable in an SMTP envelope")
    return f"<{address}>"


class Session:
    """One SMTP connection after EHLO/STARTTLS/AUTH, running one transaction at a time."""

    def __init__(self, transport: asyncio.Transport, *, extensions: dict[str, str], timeout: float) -> None:
        self._transport = transport
        self._replies = _Replies()
        transport.set_protocol(self._replies)
        self._timeout = timeout
        self.pipelining = "pipelining" in extensions
        self._size = "size" in extensions
        self._utf8 = "smtputf8" in extensions
        self._busy = False

    @classmethod
    async def open(cls, client: aiosmtplib.SMTP) -> Session:
        """Connect `client` (greeting, EHLO, STARTTLS and login as configured on it) and take its transport."""
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        transport = client.transport
        if transport is None:
            raise SMTPServerDisconnected("Connection lost")
        timeout = client.timeout if isinstance(client.timeout, int | float) else 60.0
        return cls(transport, extensions=dict(client.esmtp_extensions), timeout=float(timeout))  # type: ignore[arg-type]

    @property
    def is_connected(self) -> bool:
        return self._replies.error is None and not self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    async def quit(self) -> None:
        try:
            if self.is_connected:
                self._transport.write(b"QUIT\r\n")
                await self._replies.next(min(self._timeout, 2.0))
        finally:
            self.close()

    async def sendmail(self, sender: str, recipients: Sequence[str], message: bytes) -> dict[str, Reply]:
        """One transaction; returns the recipients refused while others were accepted (address -> reply).

        Raises SMTPSenderRefused, SMTPRecipientsRefused (every recipient refused), SMTPDataError, or a
        connection error; after a refusal the envelope has been reset and the session is reusable."""
        if self._busy:
            raise RuntimeError("one transaction at a time per SMTP session")
        self._busy = True
        try:
            return await self._transaction(sender, recipients, message)
        except (SMTPSenderRefused, SMTPRecipientsRefused, SMTPDataError):
            raise  # the server answered: the session is in a known state
        except BaseException:
            self.close()  # cut short: whatever the server thinks now, this connection is not reused
            raise
        finally:
            self._busy = False

    async def _transaction(self, sender: str, recipients: Sequence[str], message: bytes) -> dict[str, Reply]:
        utf8 = not sender.isascii() or not all(r.isascii() for r in recipients)
        if utf8 and not self._utf8:
            raise SMTPRecipientsRefused([SMTPRecipientRefused(553, "non-ASCII address and no SMTPUTF8", r)
                                         for r in recipients])
        encoding = "utf-8" if utf8 else "ascii"
        if message.count(b"\n") != message.count(b"\r\n") or message.count(b"\r") != message.count(b"\r\n"):
            message = _LINE_END.sub(b"\r\n", message)  # lone CR or LF: CRLF on the wire (RFC 5321)
        if not message.endswith(b"\r\n"):
            message += b"\r\n"
        options = (f" SIZE={len(message)}" if self._size else "") + (" SMTPUTF8" if utf8 else "")
        mail = f"MAIL FROM:{envelope_address(sender)}{options}\r\n".encode(encoding)
        rcpts = [f"RCPT TO:{envelope_address(r)}\r\n".encode(encoding) for r in recipients]
        write, read = self._transport.write, self._replies.next
        timeout = self._timeout

        if self.pipelining:
            write(b"".join([mail, *rcpts, b"DATA\r\n"]))
            mail_reply = await read(timeout)
            rcpt_replies = [await read(timeout) for _ in rcpts]
            data_reply = await read(timeout)
        else:
            write(mail)
            mail_reply = await read(timeout)
            rcpt_replies, data_reply = [], Reply(503, "not sent")
            if mail_reply.code == 250:
                for rcpt in rcpts:
                    write(rcpt)
                    rcpt_replies.append(await read(timeout))
                if any(r.code in (250, 251) for r in rcpt_replies):
                    write(b"DATA\r\n")
                    data_reply = await read(timeout)

        # rcpt_replies is empty when MAIL FROM was refused without pipelining: no recipient is refused then.
        refused = {r: reply for r, reply in zip(recipients, rcpt_replies, strict=False) if reply.code not in (250, 251)}
        problem: Exception | None = None
        if mail_reply.code != 250:
            problem = SMTPSenderRefused(mail_reply.code, mail_reply.text, sender)
        elif len(refused) == len(recipients):
            problem = SMTPRecipientsRefused([SMTPRecipientRefused(reply.code, reply.text, r)
                                             for r, reply in refused.items()])
        elif data_reply.code != 354:
            problem = SMTPDataError(data_reply.code, data_reply.text)
        if problem is not None:
            if data_reply.code == 354:
                # RFC 2920: DATA went through although the envelope did not; end it with nothing in it.
                write(b".\r\n")
                await read(timeout)
            await self._reset()
            raise problem

        # Dot-stuffing (RFC 5321 4.5.2): a line that starts with "." gets another one.
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        write((b"." + stuffed if stuffed.startswith(b".") else stuffed) + b".\r\n")
        final = await read(timeout)
        if final.code != 250:
            raise SMTPDataError(final.code, final.text)
        return refused

    async def _reset(self) -> None:
        self._transport.write(b"RSET\r\n")
        reply = await self._replies.next(self._timeout)
        if reply.code != 250:
            raise SMTPResponseException(reply.code, reply.text)
