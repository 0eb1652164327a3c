"""The one strict JSON parser, as both edges use it: Kafka record values and HTTP bodies."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from shared.platform.envelope import DEPTH_MAX, EnvelopeError, loads_bounded
from shared.platform.http import InvalidJSON, strict_json_body

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


def _hostile():
    as_json = _json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return st.one_of(st.binary(max_size=300), as_json,
                     st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
                     st.integers(1, 80).map(lambda n: b'{"a": 1' + b"0" * n + b"}"),
                     st.sampled_from([b"1e999", b"-1e400", b'{"a": NaN}', b"Infinity", b'{"a":1,"a":1}',
                                      "\ufeff{}".encode(), b'"\\ud800"', b'"\\u0000"']))


def _outcome(parse, refused, raw):
    try:
        return ("ok", parse(raw))
    except refused as exc:
        assert str(exc) and len(str(exc)) < 400
        return ("refused", str(exc))


@settings(max_examples=600, deadline=None)
@given(_hostile())
def test_both_edges_refuse_with_a_reason_or_return_strict_json(raw):
    """Any bytes: each edge refuses with its own error and a reason, or returns strict JSON.

    What the HTTP edge accepts the Kafka edge accepts as the same value (HTTP only adds the
    text rule); neither ever yields a non-finite number or an over-long integer.
    """
    kafka = _outcome(loads_bounded, EnvelopeError, raw)
    http = _outcome(strict_json_body, InvalidJSON, raw)
    for kind, value in (kafka, http):
        if kind == "ok":
            json.dumps(value, allow_nan=False)
    if http[0] == "ok":
        assert kafka == http
        json.dumps(http[1], allow_nan=False, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("raw", [b"1e999", b'{"x": -1e400}', b'[1, 2, 3e5000]'])
def test_a_number_that_overflows_to_infinity_is_refused_on_both_edges(raw):
    with pytest.raises(EnvelopeError, match="not finite"):
        loads_bounded(raw)
    with pytest.raises(InvalidJSON, match="not finite"):
        strict_json_body(raw)


@pytest.mark.parametrize("depth", [DEPTH_MAX, DEPTH_MAX + 1])
def test_both_edges_share_one_depth_bound(depth):
    raw = b"[" * depth + b"]" * depth
    if depth <= DEPTH_MAX:
        assert loads_bounded(raw) == strict_json_body(raw)
    else:
        with pytest.raises(EnvelopeError, match="nested deeper"):
            loads_bounded(raw)
        with pytest.raises(InvalidJSON, match="nested deeper"):
            strict_json_body(raw)


def test_the_text_rule_is_the_http_edges_own():
    raw = b'{"a": "x\\u001by"}'
    assert loads_bounded(raw) == {"a": "x\x1by"}
    with pytest.raises(InvalidJSON, match="control character"):
        strict_json_body(raw)
    with pytest.raises(InvalidJSON, match="control character"):
        strict_json_body(b'{"\\u0085": 1}')  # keys are text too
