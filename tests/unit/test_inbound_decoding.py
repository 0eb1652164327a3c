"""Reading a record never fails in a way the consumer cannot turn into a dead letter.

Property: for arbitrary bytes and headers, `EventConsumer._check` returns either a checked
event or a dead-letter outcome with a reason; it never raises (an exception there would
rewind the partition forever), and the shape check bounds what the JSON parser may recurse.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from shared.contracts import registry
from shared.contracts.registry import unstorable_text
from shared.platform.consumer import DEAD_LETTERED, EventConsumer, Outcome
from shared.platform.dead_letter import KafkaRecord, record_size
from shared.platform.envelope import DEPTH_MAX, CloudEvent, EnvelopeError, decode, loads_bounded

TOPICS = ["ntb.invitations.events", "ntb.commitments.events", "ntb.commitments.inbound", "ntb.bpjs.realization"]
TYPES = sorted(spec.type for spec in registry)
NAMES = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "CE_ID", "x-other"]

header_values = st.one_of(st.none(), st.binary(max_size=30), st.sampled_from(
    [b"1.0", b"application/json", b"application/cloudevents+json", b"/src", b"2026-01-01T00:00:00Z", b""]
    + [t.encode() for t in TYPES]))
header_names = st.one_of(st.sampled_from(NAMES), st.text(max_size=8),
                         st.binary(min_size=1, max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape")))
values = st.one_of(st.none(), st.binary(max_size=300),
                   st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                             max_size=3),
                                max_leaves=10).map(lambda v: json.dumps(v).encode()),
                   st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n))


def consumer() -> EventConsumer:
    return EventConsumer(name="c", pool=None, registry=registry, outbox=None, dead_letters=None)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(TOPICS), key=st.one_of(st.none(), st.binary(max_size=12)), value=values,
       headers=st.lists(st.tuples(header_names, header_values), max_size=8))
def test_any_record_is_checked_or_refused_with_a_reason(topic, key, value, headers):
    record = KafkaRecord(topic, 0, 0, key, value, tuple(headers))
    result = consumer()._check(record)  # noqa: SLF001 - the check alone, without a database
    if isinstance(result, Outcome):
        assert result.status == DEAD_LETTERED and result.reason
    else:
        event, _, payload = result
        assert event.type in registry.types_on(topic)
        assert record.key == registry.spec(event.type).key_of(payload).encode()
    assert record_size(record) >= 0  # a dead letter can always be sized (header names as sent)


@given(st.binary(max_size=2000))
def test_loads_bounded_raises_only_envelope_errors(raw):
    with contextlib.suppress(EnvelopeError):
        loads_bounded(raw)


@pytest.mark.parametrize("depth", [DEPTH_MAX, DEPTH_MAX + 1, 1000, 100_000])
def test_depth_is_bounded_before_parsing(depth):
    raw = b"[" * depth + b"]" * depth
    if depth <= DEPTH_MAX:
        assert loads_bounded(raw) is not None
    else:
        with pytest.raises(EnvelopeError, match="nested deeper than 32"):
            loads_bounded(raw)


def test_brackets_inside_strings_do_not_count():
    assert loads_bounded(json.dumps({"x": "[" * 5000 + '\\"{'}).encode())["x"].startswith("[[")


@pytest.mark.parametrize("raw,reason", [
    (b'{"a": NaN}', "NaN is not a JSON number"), (b'{"a": 1, "a": 2}', "key 'a' appears twice"),
    (b"\xff", "not UTF-8"), (b"\xfe\xff\x00{", "not UTF-8"),
])
def test_strict_json(raw, reason):
    with pytest.raises(EnvelopeError, match=reason):
        loads_bounded(raw)


@pytest.mark.parametrize("headers,reason", [
    ([("ce_id", None)], "header 'ce_id' is NULL"),
    ([("ce_type", b"\xff")], "header 'ce_type' is not UTF-8"),
    ([("ce_id", b"a"), ("Ce_Id", b"b")], "header 'Ce_Id' is sent more than once"),
    ([("ce_id", b"a\nb")], "control character"),
    ([("ce_id", b"i" * 300)], "300 characters; the limit is 256"),
    ([("x-\udcff", b"1")], "a header name is not UTF-8: b'x-\\\\xff'"),
])
def test_unreadable_headers_are_refused_naming_them(headers, reason):
    base = [("ce_specversion", b"1.0"), ("ce_source", b"/s"), ("ce_type", b"t.v1"), ("ce_id", b"1")]
    names = {k.lower() for k, _ in headers}
    with pytest.raises(EnvelopeError, match=reason.replace("(", r"\(")):
        decode(b"{}", [h for h in base if h[0] not in names] + headers)


def test_unknown_headers_are_not_read_even_when_null_or_not_utf8():
    base = [("ce_specversion", b"1.0"), ("ce_source", b"/s"), ("ce_type", b"t.v1"), ("ce_id", b"1")]
    assert decode(b"{}", [*base, ("x-null", None), ("x-bytes", b"\xff"), ("x-null", None)]).id == "1"


@pytest.mark.parametrize("data,where", [
    ({"a": "x\x00"}, "a: text contains a NUL"), ({"a": [{"b": "\ud800"}]}, "a.0.b: text contains a lone surrogate"),
    ({"k\x00": 1}, "k\x00 (field name)"), ({"a": {"\ud800": 1}}, "a.\\ud800 (field name): text contains a lone surrogate"),
])
def test_unstorable_text_is_found_with_its_path(data, where):
    assert where in (unstorable_text(data) or "")


def _every_unstorable_place(value, path=""):
    """The check written plainly (every string encoded): what the fast path must agree with."""
    if isinstance(value, str):
        return [path] if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _every_unstorable_place(k, path) + _every_unstorable_place(v, path)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _every_unstorable_place(v, path)]
    return []


hostile_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "x\udfffy", "\u00e9\ud83d", "\U0001f600", "\u2028", ""])
json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | hostile_text,
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
                         max_leaves=25)


@given(json_like)
def test_unstorable_text_finds_a_place_exactly_when_one_exists(value):
    """The walk that skips naming places (ASCII strings unencoded) refuses exactly what encoding every string would."""
    assert (unstorable_text(value) is None) == (not _every_unstorable_place(value))


def _meeting_record(title: str, extra_key: str, extra: Any, *, ascii_only: bool) -> KafkaRecord:
    """A MeetingScheduled record whose title and an ignored field carry `title` / `extra`, written with every
    non-ASCII character escaped, or raw as UTF-8 (a lone surrogate is always escaped: it has no UTF-8 form)."""
    body = {"meeting_id": "6f1c1f43-5ad4-4a4c-9d0e-2b0c1d2e3f40", "title": title, "starts_at": "2030-01-01T01:00:00Z",
            "ends_at": "2030-01-01T03:00:00Z", "venue": "Mataram", "organizer": "Wagub NTB", extra_key: extra}
    text = json.dumps(body, ensure_ascii=ascii_only)
    value = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m[0]):04x}", text).encode()
    event = CloudEvent.new(source="/test", type="ntb.invitations.meeting.scheduled.v1", data=value)
    return KafkaRecord("ntb.invitations.events", 0, 0, b"6f1c1f43-5ad4-4a4c-9d0e-2b0c1d2e3f40", value,
                       tuple(event.to_headers()))


# What the strict parser accepts (finite numbers, bounded integers): the text check is what is tested here.
parseable_json = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20)
                              | st.floats(allow_nan=False, allow_infinity=False) | hostile_text,
                              lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
                              max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(title=hostile_text.filter(lambda t: t.strip()), extra_key=hostile_text, extra=parseable_json,
       ascii_only=st.booleans())
def test_the_consumer_refuses_unstorable_text_however_the_json_spells_it(title, extra_key, extra, ascii_only):
    """NUL or a lone surrogate anywhere in a payload (a known field, an ignored one, a field name) is refused with
    the place named, whether the JSON escapes it or not; text without them is accepted (the check is skipped only
    for JSON without any \\u escape, which cannot spell either)."""
    record = _meeting_record(title, extra_key, extra, ascii_only=ascii_only)
    result = consumer()._check(record)  # noqa: SLF001 - the check alone, without a database
    body = {"title": title, extra_key: extra}
    if _every_unstorable_place(body):
        assert isinstance(result, Outcome) and result.status == DEAD_LETTERED
        assert "text contains a NUL" in (result.reason or "") or "lone surrogate" in (result.reason or "")
    else:
        assert not isinstance(result, Outcome) or "text contains" not in (result.reason or ""), result


def test_the_consumer_loop_keeps_its_delivery_settings():
    from shared.platform.subscription import Subscription

    with pytest.raises(ValueError, match="enable_auto_commit"):
        Subscription(consumer(), bootstrap_servers="x:9092", topics=["t"], enable_auto_commit=True)
