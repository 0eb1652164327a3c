"""The pipelining client's reply reader and envelope checks, fed hostile bytes directly (no sockets)."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiosmtplib import SMTPReadTimeoutError, SMTPResponseException, SMTPServerDisconnected
from hypothesis import given, settings, strategies as st

from shared.platform.smtp_session import Reply, _Replies, envelope_address

# CI runs a bounded number of examples; NTB_HYPOTHESIS_PROFILE=long runs many more.
EXAMPLES = {"ci": 200, "long": 3000}[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")]
PROFILE = settings(max_examples=EXAMPLES, deadline=None)

replies = st.lists(st.tuples(st.integers(200, 599), st.lists(st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30),
    min_size=1, max_size=3)), min_size=1, max_size=6)


def wire(code: int, lines: list[str]) -> bytes:
    return b"".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
                    for i, line in enumerate(lines))


@PROFILE
@given(replies, st.data())
def test_replies_arriving_in_any_chunks_come_out_whole_and_in_order(sent, data):
    """Pipelined replies arrive together or split anywhere: each comes out once, in order, multi-line joined."""
    stream = b"".join(wire(code, lines) for code, lines in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = _Replies()
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.data_received(stream[a:b])

    async def drain() -> list[Reply]:
        return [await reader.next(1) for _ in sent]

    got = asyncio.run(drain())
    assert [r.code for r in got] == [code for code, _ in sent]
    assert [r.text for r in got] == ["\n".join(line.encode().strip().decode() for line in lines) for _, lines in sent]


@PROFILE
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_replies_or_an_error_never_a_hang(raw):
    """Garbage, NULs, non-UTF-8 and lines without a code: the reader reports an error or parses; it never
    blocks past its timeout or raises anything but an SMTP error."""
    reader = _Replies()
    reader.data_received(raw)
    reader.connection_lost(None)

    async def drain() -> None:
        for _ in range(raw.count(b"\n") + 1):
            await reader.next(0.05)

    with pytest.raises((SMTPResponseException, SMTPServerDisconnected)):
        asyncio.run(drain())


def test_a_reply_never_completed_times_out():
    reader = _Replies()
    reader.data_received(b"250-first line of many\r\n")
    with pytest.raises(SMTPReadTimeoutError):
        asyncio.run(reader.next(0.05))


def test_an_endless_reply_is_refused():
    reader = _Replies()
    for _ in range(2000):
        reader.data_received(b"250-" + b"x" * 60 + b"\r\n")
    with pytest.raises(SMTPResponseException):
        asyncio.run(reader.next(0.05))


@PROFILE
@given(st.text(max_size=60))
def test_envelope_addresses_never_carry_a_line_break_or_bracket(address):
    """Whatever the address, the envelope command cannot be split or extended by it."""
    try:
        quoted = envelope_address(address)
    except ValueError:
        return
    inner = quoted[1:-1]
    assert inner == address and not any(c in inner for c in "\r\n\x00 <>\t")
