"""The outbox's packed headers (header_pack): what writers pack reads back as the pairs Kafka sends,
and any bytes at all either read as a list or are refused with a ValueError, never anything else.
What reads as a list is then held to aiokafka's own header check, and whatever a row holds can be
kept in outbox_dead (jsonb) if it has to be set aside."""

from __future__ import annotations

import json

import msgpack
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import example, given, settings, strategies as st

from shared.platform.envelope import CloudEvent
from shared.platform.outbox import _headers_text, _pairs, pack_headers, row, unpack_headers

# Anything MessagePack can carry: scalars, text with any code point (lone surrogates cannot be
# packed as UTF-8, so they are left to the raw-bytes case), bytes, and nested lists.
PACKABLE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(st.characters(exclude_categories=("Cs",)))
    | st.binary(),
    lambda inner: st.lists(inner, max_size=6) | st.tuples(inner, inner),
    max_leaves=30,
)


def event() -> CloudEvent:
    return CloudEvent.new(source="/test/pack", type="ntb.test.thing.happened.v1", data=b"{}", subject="5201",
                          correlation_id="corr-1", causation_id="cause-1")


def test_a_written_row_packs_exactly_the_headers_its_jsonb_holds():
    e = event()
    written = row(e, topic="t", key="k")
    assert unpack_headers(written[5]) == e.to_headers()
    assert [[k, v.decode()] for k, v in unpack_headers(written[5])] == written[3]
    # As aiokafka takes them: a list of (str, bytes) tuples.
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", b"{}", unpack_headers(written[5])) > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_read_as_a_list_or_are_refused_with_a_value_error(raw):
    try:
        pairs = unpack_headers(raw)
    except ValueError:
        return
    assert type(pairs) is list


@settings(max_examples=300, deadline=None)
@given(PACKABLE)
def test_any_packed_value_reads_as_pairs_aiokafka_accepts_or_is_refused(value):
    packed = msgpack.packb(value, use_bin_type=True)
    try:
        pairs = unpack_headers(packed)
    except ValueError:
        assert not isinstance(value, (list, tuple))  # only a non-list is refused here
        return
    well_typed = all(isinstance(p, tuple) and len(p) == 2 and type(p[0]) is str and (p[1] is None or type(p[1]) is bytes)
                     for p in pairs)
    try:
        DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", b"v", pairs)
    except (TypeError, ValueError, AttributeError):  # what the relay's send path sets aside as malformed
        assert not well_typed  # aiokafka refuses exactly what is not (text, bytes or null) pairs
    else:
        assert well_typed


@pytest.mark.parametrize(("packed", "why"), [
    (msgpack.packb([{"ce_id": b"x"}], use_bin_type=True), "max_map_len"),  # no maps at any depth
    (msgpack.packb([msgpack.ExtType(1, b"x")]), "max_ext_len"),  # nor extension types
    (b"\xdd\xff\xff\xff\xff", "max_array_len"),  # 2**32-1 elements announced, nothing allocated
    (b"\x92\xa1a", "incomplete"),
    (msgpack.packb([["a", b"b"]]) + b"\x00", "ExtraData"),
    (b"\x91\x92\xa2\xed\xa0\xc4\x01x", "UnicodeDecodeError"),  # a lone surrogate, UTF-8 encoded
    (msgpack.packb({"ce_id": "x"}), "max_map_len"),
    (msgpack.packb("ce_id"), "not a list of pairs but str"),
])
def test_malformed_packs_are_refused_saying_why(packed, why):
    with pytest.raises(ValueError, match=why):
        unpack_headers(packed)


class FakeRow(dict):
    """An asyncpg.Record stand-in: the columns TAKE_BATCH returns."""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | PACKABLE.map(lambda v: msgpack.packb(v, use_bin_type=True)))
@example(pack_headers([("a\x00", b"b")]))
@example(pack_headers([("a", b"\x00\xff")]))
@example(pack_headers([("a", None), ("b", 5)]))  # type: ignore[list-item]
def test_whatever_a_pack_holds_can_be_kept_in_outbox_dead(packed):
    """outbox_dead.headers is jsonb: the text given for it must parse and hold no NUL (jsonb refuses
    \\u0000), or the set-aside row would fail its insert and hold up every row behind it."""
    r = FakeRow(header_pack=packed, headers=None, topic="t", key="k", payload=b"")
    (pairs,), _ok = _pairs([r])  # type: ignore[list-item]
    text = _headers_text(r, pairs)  # type: ignore[arg-type]
    json.loads(text)
    assert "\\u0000" not in text


def test_rows_without_a_pack_are_read_from_their_jsonb_and_malformed_ones_named():
    rows = [FakeRow(header_pack=None, headers=json.dumps(h)) for h in
            ([["ce_id", "a"]], {"ab": "c"}, ["ab"], [["ce_id", None]], [[1, "x"]])]
    heads, ok = _pairs(rows)  # type: ignore[arg-type]
    assert not ok
    assert heads[0] == [("ce_id", b"a")]
    # An object or a two-character string is not taken for a pair.
    assert all(isinstance(h, ValueError) for h in heads[1:4])
    assert heads[4] == [(1, b"x")]  # left to aiokafka's check, which refuses a number as a name
    packed = FakeRow(header_pack=pack_headers([("ce_id", b"b")]), headers=None)
    assert _pairs([packed, rows[0]]) == ([[("ce_id", b"b")], [("ce_id", b"a")]], True)  # type: ignore[list-item]
