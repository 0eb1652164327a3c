"""Log redaction: the fast path masks exactly what the plain, pattern-by-pattern implementation masks."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings, strategies as st

from shared.platform.logging import (
    _API_KEY,
    _CLEAN,
    _CLEAN_MAX_ENTRIES,
    _DSN_PASSWORD,
    _EMAIL,
    _KEY_KINDS,
    _PHONE,
    _PHONE_KEYS,
    _RSVP_TOKEN,
    _SECRET_KEYS,
    _mask,
    _needs_phone_mask,
    _redact,
    mask_email,
    mask_phone,
)

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the reference: the implementation before the fast path, kept verbatim ----------------------

_DIGITS = re.compile(r"[0-9]{2}")


def slow_mask_email(value: str) -> str:
    return _EMAIL.sub(r"\1***\2", value)


def slow_mask_phone(value: str) -> str:
    return _PHONE.sub(r"\1***\2", value)


def slow_mask(value: str) -> str:
    if "://" in value:
        value = _DSN_PASSWORD.sub(r"\1***@", value)
    if "ntbk_" in value:
        value = _API_KEY.sub(r"\1***", value)
    if "." in value and len(value) > 40:
        value = _RSVP_TOKEN.sub(r"\1.***", value)
    if "@" in value:
        value = slow_mask_email(value)
    if _DIGITS.search(value):
        value = slow_mask_phone(value)
    return value


def plain_mask(value: str) -> str:
    """Every pattern, in order, with no guard at all: the definition of what is masked."""
    value = _DSN_PASSWORD.sub(r"\1***@", value)
    value = _API_KEY.sub(r"\1***", value)
    value = _RSVP_TOKEN.sub(r"\1.***", value)
    return slow_mask_phone(slow_mask_email(value))


def slow_redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event_dict[key] = "***"
        elif isinstance(value, str) and _PHONE_KEYS.search(key):
            event_dict[key] = "***" if not value else value[:3] + "***" + value[-2:]
        elif isinstance(value, str):
            event_dict[key] = slow_mask(value)
    return event_dict


# --- generated log values: personal data and credentials among ids, times and prose --------------

LOCAL = st.text("abcXYZ019._%+-", min_size=1, max_size=12)
emails = st.builds(lambda a, d, t: f"{a}@{d}.{t}", LOCAL, st.text("abcxyz019-", min_size=1, max_size=12),
                   st.sampled_from(["go.id", "id", "com", "kab.go.id"]))
phone_digits = st.lists(st.sampled_from(list("0123456789") * 4 + [" ", "-", "(", ")"]), min_size=5, max_size=18)
odd_phones = st.builds(lambda p, sp, body, tail: f"{p}{sp}{''.join(body)}{tail}",
                       st.sampled_from(["+62", "62", "0", "+", "6", "00", "+620"]), st.sampled_from(["", " ", "-"]),
                       phone_digits, st.text("0123456789", min_size=0, max_size=3))
groups = st.lists(st.text("0123456789", min_size=2, max_size=4), min_size=2, max_size=4)
written_phones = st.builds(lambda p, sp, first, g, sep: f"{p}{sp}{first}{sep.join(g)}",
                           st.sampled_from(["+62", "62", "0"]), st.sampled_from(["", " "]),
                           st.sampled_from(["8", "81", "(0812) ", "3"]), groups, st.sampled_from(["", " ", "-"]))
phones = st.one_of(written_phones, odd_phones)
dsns = st.builds(lambda s, u, p, h: f"{s}://{u}:{p}@{h}/ntb", st.sampled_from(["postgresql", "amqp", "smtp", "x"]),
                 st.text("abcu019_-.", min_size=1, max_size=8), st.text("pw019!#%hunter-._", min_size=1, max_size=10),
                 st.sampled_from(["db", "127.0.0.1:5432", "h@x", ""]))
api_keys = st.builds(lambda i, s: f"ntbk_{i}_{s}", st.text("ab12XY", min_size=0, max_size=6),
                     st.text("s3cr3t-XY_", min_size=0, max_size=12))
rsvp_tokens = st.builds(lambda h, e, sig: f"{h}.{e}.{sig}",
                        st.one_of(st.text("0123456789abcdef", min_size=32, max_size=32),
                                  st.text("0123456789abcdefA", min_size=30, max_size=33)),
                        st.text("0123456789", min_size=0, max_size=11), st.text("AZaz09_-", min_size=18, max_size=44))
uuids = st.uuids().map(str)
timestamps = st.datetimes().map(lambda d: d.isoformat() + "Z")
amounts = st.integers(0, 10**13).map(lambda n: "Rp" + f"{n:,}".replace(",", "."))
words = st.sampled_from(["message handled", " ", "hubungi ", "tel:", "/rsvp/", "delivery sent", "hubungi", "52.01",
                         "offset 081", "id 0f8e2a", "ntb.bpjs.realization/0:1200", "<", ">", "wa.me/", "é", "Ω", "_",
                         "٣"])
separators = st.sampled_from([" ", ",", "/", ":", ".", "-", "(", ")", "<", ">", "=", "\n", "+", "é", "_", "\u00a0"])
noise = st.text(st.characters(codec="utf-8"), max_size=8)
fragments = st.one_of(emails, phones, dsns, api_keys, rsvp_tokens, uuids, timestamps, amounts, words, separators, noise)
# One credential or contact inside prose (so each pattern's boundaries are exercised), or many fragments.
before = st.one_of(st.sampled_from(["", " ", "hubungi ", "nomor ", "key ", "ke ", "telp."]), separators, words)
after = st.one_of(st.sampled_from(["", " ", " segera", " dan ", "x"]), separators, words)
log_strings = st.one_of(st.builds(lambda a, f, b: a + f + b, before,
                                  st.one_of(emails, phones, dsns, api_keys, rsvp_tokens), after),
                        st.lists(fragments, max_size=8).map("".join))


@FAST
@given(log_strings)
@example("hubungi +62 812-3456-7890 segera")
@example("081234567890")
@example("postgresql://ntb:hunter2@db/ntb for sekda@dompukab.go.id with ntbk_ab12_s3cr3tvalue")
@example("/rsvp/" + "a" * 32 + ".1790000000." + "B" * 43)
@example("(0812) 3456 7890")
@example("é0812 3456 7890")
def test_fast_masking_equals_the_previous_implementation(value):
    """Text mixing e-mails, phones, DSNs, API keys and RSVP tokens: the fast path masks exactly as before."""
    expected = slow_mask(value)
    assert plain_mask(value) == expected  # the old guards were sound too: the reference is the plain definition
    assert _mask(value) == expected
    assert mask_email(value) == slow_mask_email(value) and mask_phone(value) == slow_mask_phone(value)
    for _ in range(2):  # the second time a clean value comes from the cache of clean values
        assert _redact(None, "info", {"detail": value}) == {"detail": expected}


@FAST
@given(st.text(max_size=60))
def test_fast_masking_equals_the_previous_implementation_on_any_text(value):
    """On arbitrary Unicode text the fast path and the previous implementation agree."""
    assert _mask(value) == slow_mask(value) == plain_mask(value)


# Every kind of character that can stand right before or after a phone number.
around = st.text("+62 ()-.:/_aZé«\n,<@\u00a0٣0", max_size=3)


@FAST
@given(st.builds(lambda a, p, b: a + p + b, around, phones, around))
@example("(081234567890")
@example("x+6281234567890")
@example("«081234567890")
@example("tel.\u00a0081234567890")
@example("wa,6281234567890")
def test_fast_masking_equals_the_previous_implementation_around_phone_numbers(value):
    """A phone number next to any character: the phone guard never skips a number the pattern would mask."""
    assert _mask(value) == slow_mask(value)


keys = st.one_of(st.sampled_from(["event", "password", "db_password", "token", "phone", "mobile_no", "WhatsApp",
                                  "msisdn", "dsn_note", "api_key", "Authorization", "database_url", "note", "detail",
                                  "event_id", "correlation_id", "timestamp", "count", "reason", "phone_token"]),
                 st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
values = st.one_of(log_strings, st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(),
                   st.lists(log_strings, max_size=3), st.dictionaries(st.text(max_size=5), log_strings, max_size=2))


@FAST
@given(st.dictionaries(keys, values, max_size=10))
def test_fast_redaction_of_a_log_line_equals_the_previous_implementation(event_dict):
    """A whole event dict (secret keys, phone keys, strings and other values) is redacted exactly as before."""
    expected = slow_redact(None, "info", dict(event_dict))
    assert _redact(None, "info", dict(event_dict)) == expected
    assert _redact(None, "info", dict(event_dict)) == expected  # second time: the key and clean-value caches answer


def test_a_secret_in_a_recurring_field_is_masked_every_time():
    """The clean-value cache never lets through a value that needs masking, however often its field recurs."""
    for _ in range(3):
        line = _redact(None, "info", {"event": "delivery sent", "detail": "to sekda@dompukab.go.id",
                                      "note": "+62 812-3456-7890", "db_password": "hunter2", "phone": "081234567890"})
        assert line == {"event": "delivery sent", "detail": "to s***@dompukab.go.id", "note": "+62***90",
                        "db_password": "***", "phone": "081***90"}


def test_a_phone_field_is_masked_even_when_its_value_was_seen_clean_elsewhere():
    """The clean-value cache serves plain fields only: phone fields and secret fields are always masked."""
    assert _redact(None, "info", {"note": "12345", "ref": "hunter2"}) == {"note": "12345", "ref": "hunter2"}
    assert _redact(None, "info", {"phone": "12345", "password": "hunter2"}) == {"phone": "123***45", "password": "***"}


def test_the_caches_stay_bounded_under_unique_values():
    """Unique ids and field names cannot make the redaction caches grow without bound."""
    try:
        for i in range(_CLEAN_MAX_ENTRIES + 100):
            _redact(None, "info", {f"field_{i}": f"id-{i:08x}", "event": "x"})
        assert len(_CLEAN) <= _CLEAN_MAX_ENTRIES
        assert len(_KEY_KINDS) <= _CLEAN_MAX_ENTRIES
        assert _redact(None, "info", {"field_x_password": "hunter2"}) == {"field_x_password": "***"}  # uncached too
    finally:
        _CLEAN.clear()
        _KEY_KINDS.clear()


def test_the_phone_guard_is_implied_by_every_phone_match():
    """The cheap phone guard holds wherever the phone pattern matches (start of value or after a non-token char)."""
    for value in ("0812 3456 7890", "x +62 812 3456 78", "(0812)345678", "«0812345678", "a,6281234567890"):
        assert _PHONE.search(value) and _needs_phone_mask(value)
    for value in ("2026-11-26T13:04:26.817273Z", "3f2a6c1e-9b1d-4c7e-8a0f-2b3c4d5e6f70", "52.01"):
        assert not _needs_phone_mask(value)


def test_free_text_from_servers_loses_addresses_and_url_paths():
    """An SMTP reply quoting the address, an HTTP error quoting a webhook URL: masked for reviewers and logs."""
    from shared.platform.logging import redact_text

    smtp = redact_text("550 5.1.1 <budi.santoso@sumbawakab.go.id>: Recipient address rejected")
    assert "budi.santoso" not in smtp and "b***@sumbawakab.go.id" in smtp
    hook = redact_text("webhook unavailable: ConnectError: https://user:pw@hooks.example:8443/T0/B0/SeCrEt?key=K1 x")
    assert hook == "webhook unavailable: ConnectError: https://hooks.example:8443/*** x"


def test_http_client_libraries_log_no_request_urls(capsys):
    """httpx's INFO line carries each request URL (a webhook's token): silenced, and masked if enabled."""
    import logging

    from shared.platform.logging import configure_logging

    configure_logging("t", level="DEBUG", json=True)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    logging.getLogger("httpx").warning('HTTP Request: POST %s "HTTP/1.1 500"', "https://gw.example/hook/T0K3N?sig=abc")
    err = capsys.readouterr().err
    assert "gw.example/***" in err and "T0K3N" not in err and "sig=abc" not in err
