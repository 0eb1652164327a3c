"""Session cookies (shared/platform/web_session.py): genuine ones carry the API keys' role and region; anything
else, forged, altered, expired or hostile, is no session."""

from __future__ import annotations

import base64
import json

from hypothesis import given, strategies as st

from shared.contracts.roles import Role
from shared.platform import web_session

SECRET = b"s" * 32


def test_a_genuine_cookie_is_the_principal_it_was_issued_for():
    cookie = web_session.issue(SECRET, email="Operator@Dompukab.go.id", name="Operator Dompu",
                               role=Role.REGION_OPERATOR, region_code="52.05", lifetime_seconds=60, now=1000)
    principal, _ = web_session.verify(SECRET, cookie, now=1059)
    assert (principal.role, principal.region_code, principal.name) == (Role.REGION_OPERATOR, "52.05", "Operator Dompu")
    assert principal.key_id == web_session.subject_of("operator@dompukab.go.id") and "@" not in principal.key_id
    assert not principal.can_act_for("52.01")
    assert web_session.verify(SECRET, cookie, now=1060) is None  # expired
    assert web_session.verify(b"o" * 32, cookie, now=1000) is None  # another key


def test_a_re_signed_body_with_another_role_is_refused():
    cookie = web_session.issue(SECRET, email="a@b.go.id", name="A", role=Role.REGION_OPERATOR, region_code="52.05",
                               lifetime_seconds=60, now=1000)
    body, mac = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["r"] = "organizer"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    assert web_session.verify(SECRET, f"{forged}.{mac}", now=1000) is None


@given(st.text(max_size=300))
def test_any_text_is_no_session(cookie):
    assert web_session.verify(SECRET, cookie, now=1000) is None


@given(st.binary(max_size=200))
def test_a_signed_body_that_is_not_a_session_is_refused(raw):
    body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    cookie = f"{body}.{web_session._mac(SECRET, body)}"  # noqa: SLF001 - signed by us, yet not a session
    assert web_session.verify(SECRET, cookie, now=1000) is None


def test_deeply_nested_signed_json_is_refused():
    body = base64.urlsafe_b64encode(b"[" * 1500).rstrip(b"=").decode()
    assert web_session.verify(SECRET, f"{body}.{web_session._mac(SECRET, body)}", now=1000) is None  # noqa: SLF001
