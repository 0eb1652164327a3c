"""Forms and CSRF tokens of the server-rendered pages (shared/platform/web.py), against hostile input."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from hypothesis import given, strategies as st
from starlette.requests import Request

from shared.platform import web

SECRET = b"k" * 32
FIELDS = ("response", "reason")


def request_of(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> Request:
    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", content_type.encode("latin-1"))] if content_type else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}, receive)


def read(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    return asyncio.run(web.read_form(request_of(body, content_type), FIELDS))


def test_a_form_a_browser_sends_is_read():
    body = urlencode({"csrf": "1.x", "response": "declined", "reason": "Dinas luar\r\ndaerah \u2013 Bima"}).encode()
    assert read(body) == {"csrf": "1.x", "response": "declined", "reason": "Dinas luar\ndaerah \u2013 Bima"}


@pytest.mark.parametrize("body, content_type", [
    (b"response=a&response=b", "application/x-www-form-urlencoded"),          # duplicate field
    (b"response=a&admin=1", "application/x-www-form-urlencoded"),             # unknown field
    (b"reason=%00", "application/x-www-form-urlencoded"),                     # NUL
    (b"reason=%1b%5b31m", "application/x-www-form-urlencoded"),               # terminal escape
    (b"reason=%ED%A0%80", "application/x-www-form-urlencoded"),               # lone surrogate in UTF-8
    (b"reason=%FF", "application/x-www-form-urlencoded"),                     # not UTF-8
    ("reason=é".encode(), "application/x-www-form-urlencoded"),               # raw non-ASCII
    (b"response=accepted", "application/json"),                                # another media type
    (b"response=accepted", ""),
    (b"reason=" + b"a" * web.MAX_FORM_BYTES, "application/x-www-form-urlencoded"),
])
def test_forms_no_page_of_ours_sends_are_refused(body, content_type):
    with pytest.raises(web.FormError):
        read(body, content_type)


@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_with_a_reason(body):
    try:
        form = read(body)
    except web.FormError as exc:
        assert str(exc)
        return
    assert set(form) <= {"csrf", *FIELDS}
    assert all(not web._CONTROL.search(v) for v in form.values())  # noqa: SLF001


@given(st.text(max_size=200))
def test_hostile_values_never_pass_with_controls(value):
    body = urlencode({"reason": value}).encode()
    try:
        form = read(body)
    except web.FormError:
        return
    assert not web._CONTROL.search(form["reason"])  # noqa: SLF001


def test_csrf_token_is_bound_to_its_subject_and_expires():
    token = web.csrf_token(SECRET, "inv-1", now=1_000_000)
    web.check_csrf(SECRET, "inv-1", token, now=1_000_010)
    for subject, secret, moment in (("inv-2", SECRET, 1_000_010), ("inv-1", b"o" * 32, 1_000_010),
                                    ("inv-1", SECRET, 1_000_000 + web.CSRF_LIFETIME_SECONDS + 1),
                                    ("inv-1", SECRET, 999_000)):
        with pytest.raises(web.FormError):
            web.check_csrf(secret, subject, token, now=moment)


@given(st.text(max_size=80))
def test_forged_csrf_tokens_are_refused(token):
    with pytest.raises(web.FormError):
        web.check_csrf(SECRET, "inv-1", token, now=1_000_000)


def test_browsers_get_html_and_api_clients_json():
    def req(accept: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                        "headers": [(b"accept", accept.encode())]})
    assert web.wants_html(req("text/html,application/xhtml+xml,*/*;q=0.8"))
    assert not web.wants_html(req("application/json"))
    assert not web.wants_html(req("*/*"))


def test_whole_numbers_are_ascii_digits_only():
    assert web.whole_number("12") == 12 and web.whole_number("0") == 0
    for text in ("²", "١٢", "+1", " 1", "1 ", "", None, "1" * 10, "-1", "1.0"):
        assert web.whole_number(text) is None, text
