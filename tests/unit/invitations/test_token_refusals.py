"""An RSVP token is the credential of its routes: every bad one is a refusal of the shared family.

The token is checked by a dependency before the request's unit of work is opened, and answered by
the app's one error handler; anything else than a refusal there would be a 500. CI runs a bounded
number of examples; NTB_HYPOTHESIS_PROFILE=long runs many more.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given, settings, strategies as st

from services.invitations import tokens
from services.invitations.bootstrap import build
from services.invitations.settings import InvitationsSettings
from shared.platform.errors import DomainError

EXAMPLES = {"ci": 300, "long": 5000}[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")]
SECRET = b"k" * 32
NOW = datetime(2026, 1, 10, tzinfo=UTC)

_hex = st.text(alphabet="0123456789abcdefABCDEF-", min_size=0, max_size=40)
_number = st.one_of(st.integers(min_value=-10**40, max_value=10**40).map(str),
                    st.text(alphabet="0123456789+- _e.", max_size=30))
_shaped = st.tuples(st.one_of(_hex, st.uuids().map(lambda u: u.hex)), _number,
                    st.text(max_size=60)).map(".".join)
_hostile = st.one_of(
    st.text(),                                   # anything, lone surrogates and control characters included
    st.text(alphabet=st.characters(codec="utf-8"), min_size=190, max_size=260),  # around the length limit
    _shaped,                                     # three dotted parts of every shape
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(token=_hostile)
def test_any_token_text_is_refused_as_forbidden_without_quoting_it(token):
    """Whatever the path holds, verification refuses it with 403 (or 410 once genuine and expired), never
    another exception, and the reason does not repeat the token (answers and logs carry it)."""
    try:
        tokens.verify(SECRET, token, NOW)
    except DomainError as exc:
        assert exc.http_status in (403, 410), (type(exc), exc)
        assert len(token) < 8 or token not in exc.message
    else:
        raise AssertionError("a token not issued with the secret was accepted")


def test_a_genuine_token_past_its_expiry_is_gone():
    """A token this service signed, past its expiry, is 410 (the shared Gone)."""
    token = tokens.issue(SECRET, uuid.uuid4(), NOW - timedelta(seconds=1))
    try:
        tokens.verify(SECRET, token, NOW)
    except DomainError as exc:
        assert exc.http_status == 410 and isinstance(exc, tokens.ExpiredToken)
    else:
        raise AssertionError("an expired token was accepted")


async def test_a_forged_token_is_answered_403_before_any_database_work():
    """POST /rsvp/{forged} with a well-formed body: 403 with the reason, from an app whose runtime never
    started (no pool): the token is refused before a unit of work is opened."""
    _, app = build(InvitationsSettings())
    forged = f"{uuid.uuid4().hex}.{int(NOW.timestamp())}.AAAA"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        r = await client.post(f"/rsvp/{forged}", json={"response": "accepted"})
        garbage = await client.post("/rsvp/not-a-token", json={"response": "accepted"})
    assert r.status_code == 403 and r.json() == {
        "detail": "RSVP token signature is invalid (tampered, or not issued by this service)"}
    assert garbage.status_code == 403 and garbage.json() == {"detail": "RSVP token is malformed"}
