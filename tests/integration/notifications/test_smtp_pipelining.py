"""The pipelining SMTP client (shared/platform/smtp_session.py) against servers it did not write: a raw-socket
server that answers a pipelined group only once it holds the whole group, and Postfix's C smtp-sink."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field

import aiosmtplib
import pytest

from shared.platform.smtp_session import Session

from ..conftest import ROOT
from .conftest import free_port

pytestmark = [pytest.mark.integration]
MESSAGE = b"Subject: uji\r\n\r\nbaris satu\r\n.baris yang diawali titik\r\n..dua titik\r\n"


@dataclass
class RawServer:
    """Plain asyncio streams; `pipelining` decides whether PIPELINING is offered and whether the server waits for
    MAIL, every RCPT and DATA before it answers any of them (a client that waits for each reply then hangs)."""

    pipelining: bool = True
    refuse: set[bytes] = field(default_factory=set)
    groups: list[list[bytes]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-raw\r\n" + (b"250-PIPELINING\r\n" if self.pipelining else b"") + b"250 8BITMIME\r\n")
        accepted = 0
        while line := await reader.readline():
            verb = line[:4].upper()
            self.commands.append(verb)
            if verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            if verb == b"RSET":
                accepted = 0
                writer.write(b"250 reset\r\n")
                continue
            group = [line]
            if self.pipelining and verb == b"MAIL":
                while not group[-1].upper().startswith(b"DATA"):
                    group.append(await asyncio.wait_for(reader.readline(), 10))
                    self.commands.append(group[-1][:4].upper())
            self.groups.append(group)
            for command in group:
                verb = command[:4].upper()
                if verb == b"MAIL":
                    writer.write(b"250 sender ok\r\n")
                elif verb == b"RCPT":
                    refused = any(address in command for address in self.refuse)
                    accepted += not refused
                    writer.write(b"550 5.1.1 mailbox unknown\r\n" if refused else b"250 recipient ok\r\n")
                elif verb == b"DATA":
                    if not accepted:
                        writer.write(b"554 no valid recipients\r\n")
                        continue
                    writer.write(b"354 go ahead\r\n")
                    body = bytearray()
                    while (data_line := await reader.readline()) != b".\r\n":
                        body += data_line[1:] if data_line.startswith(b".") else data_line
                    self.messages.append(bytes(body))
                    writer.write(b"250 2.0.0 queued\r\n")
                    accepted = 0
        writer.close()


async def session_with(server: RawServer) -> tuple[Session, asyncio.AbstractServer]:
    port = free_port()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10,
                             local_hostname="test.local")
    return await Session.open(client), listener


async def test_a_pipelined_transaction_sends_mail_rcpt_and_data_without_waiting():
    """MAIL, RCPT and DATA go in one group: the server answers nothing until it holds all three. The message
    arrives dot-stuffed and intact."""
    server = RawServer()
    session, listener = await session_with(server)
    try:
        assert session.pipelining
        refused = await asyncio.wait_for(session.sendmail("a@ntb.go.id", ["b@ntb.go.id"], MESSAGE), 15)
        assert refused == {}
        assert [[c[:4] for c in g] for g in server.groups] == [[b"MAIL", b"RCPT", b"DATA"]]
        assert server.messages == [MESSAGE]
    finally:
        await session.quit()
        listener.close()


async def test_a_refused_recipient_is_reported_per_recipient_and_the_session_goes_on():
    """One of two recipients refused: the other still gets the message and the refusal names its address; with
    every recipient refused, the DATA is not sent, the envelope is reset and the next message goes through."""
    server = RawServer(refuse={b"nobody@ntb.go.id"})
    session, listener = await session_with(server)
    try:
        refused = await session.sendmail("a@ntb.go.id", ["nobody@ntb.go.id", "b@ntb.go.id"], MESSAGE)
        assert list(refused) == ["nobody@ntb.go.id"] and refused["nobody@ntb.go.id"].code == 550
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as err:
            await session.sendmail("a@ntb.go.id", ["nobody@ntb.go.id"], MESSAGE)
        assert [(r.code, r.recipient) for r in err.value.recipients] == [(550, "nobody@ntb.go.id")]
        assert b"RSET" in server.commands and session.is_connected
        assert await session.sendmail("a@ntb.go.id", ["b@ntb.go.id"], MESSAGE) == {}
        assert len(server.messages) == 2
    finally:
        await session.quit()
        listener.close()


async def test_without_pipelining_each_command_waits_for_its_reply():
    server = RawServer(pipelining=False)
    session, listener = await session_with(server)
    try:
        assert not session.pipelining
        assert await session.sendmail("a@ntb.go.id", ["b@ntb.go.id"], MESSAGE) == {}
        assert all(len(g) == 1 for g in server.groups) and server.messages == [MESSAGE]
    finally:
        await session.quit()
        listener.close()


async def test_an_address_that_could_inject_a_command_is_refused_before_anything_is_sent():
    server = RawServer()
    session, listener = await session_with(server)
    try:
        with pytest.raises(ValueError, match="not usable in an SMTP envelope"):
            await session.sendmail("a@ntb.go.id", ["b@ntb.go.id>\r\nRCPT TO:<evil@x.y"], MESSAGE)
        assert server.groups == [] and not session.is_connected  # cut short: never reused
    finally:
        listener.close()


def c_sink() -> str | None:
    try:
        out = subprocess.run([str(ROOT / "deploy/local/smtp_sink.sh")], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


async def test_against_postfix_smtp_sink(tmp_path):
    """Postfix's smtp-sink offers PIPELINING: twenty messages over one session, every one counted by the sink."""
    path = c_sink()
    if path is None:
        pytest.skip("smtp-sink not available (deploy/local/smtp_sink.sh failed)")
    port = free_port()
    counter = tmp_path / "sink.out"
    with open(counter, "wb") as out:
        proc = subprocess.Popen([path, "-c", *(["-u", "nobody"] if os.geteuid() == 0 else []),
                                 f"127.0.0.1:{port}", "16"], stdout=out, stderr=subprocess.DEVNULL)
    try:
        client = None
        for _ in range(50):
            try:
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10,
                                         local_hostname="test.local")
                session = await Session.open(client)
                break
            except (OSError, aiosmtplib.SMTPException):
                time.sleep(0.1)
        else:
            pytest.fail("smtp-sink did not start")
        assert session.pipelining
        for _ in range(20):
            assert await session.sendmail("a@ntb.go.id", ["b@ntb.go.id"], MESSAGE) == {}
        await session.quit()
        time.sleep(0.2)
        assert counter.read_bytes().rstrip(b"\r\n").rsplit(b"\r", 1)[-1].endswith(b"mesg=20")
    finally:
        proc.terminate()
        proc.wait(10)


def self_signed(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


async def test_the_session_takes_over_after_starttls_and_auth(tmp_path):
    """aiosmtplib upgrades with STARTTLS and logs in (aiosmtpd requires both); the transactions that follow run
    over the TLS transport the session took over, and the server sees them authenticated."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    received: list[tuple[str | None, bytes]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            received.append((session.authenticated and session.auth_data.login.decode(), envelope.content))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"notifikasi" and auth_data.password == b"rahasia-yang-panjang"
        return AuthResult(success=ok, auth_data=auth_data)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_tls,
                            require_starttls=True, auth_required=True, authenticator=authenticator)
    controller.start()
    try:
        client_tls = ssl.create_default_context(cafile=cert)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=client_tls,
                                 username="notifikasi", password="rahasia-yang-panjang", timeout=10,
                                 local_hostname="test.local")
        session = await Session.open(client)
        try:
            for _ in range(3):
                assert await session.sendmail("a@ntb.go.id", ["b@ntb.go.id"], MESSAGE) == {}
        finally:
            await session.quit()
        assert [login for login, _ in received] == ["notifikasi"] * 3
        assert all(content.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n") for _, content in received)
    finally:
        controller.stop()
