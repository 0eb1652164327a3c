"""CloudEvents envelope: binary mode out, binary and structured mode in."""

import json

import pytest

from shared.platform.envelope import CloudEvent, EnvelopeError, decode


def _event() -> CloudEvent:
    return CloudEvent.new(source="/ntb/rakor/test", type="ntb.test.thing.happened.v1", data=b'{"a": 1}', subject="52.01")


def test_binary_mode_round_trip_keeps_every_attribute():
    """An event written as headers and value decodes to the same attributes."""
    event = _event()
    back = decode(event.data, event.to_headers())
    assert (back.id, back.source, back.type, back.subject, back.data) == (
        event.id, event.source, event.type, event.subject, event.data)
    assert back.time == event.time
    assert back.correlation_id == event.id


def test_binary_headers_carry_content_type_and_specversion():
    """Binary mode sets content-type application/json and ce_specversion 1.0."""
    headers = dict(_event().to_headers())
    assert headers["content-type"] == b"application/json"
    assert headers["ce_specversion"] == b"1.0"


def test_new_event_correlates_with_itself_unless_told():
    """The first event of a chain carries its own id as correlation id."""
    event = CloudEvent.new(source="s", type="t.v1", data=b"{}")
    assert event.correlation_id == event.id
    child = CloudEvent.new(source="s", type="t.v1", data=b"{}", correlation_id=event.id, causation_id=event.id)
    assert (child.correlation_id, child.causation_id) == (event.id, event.id)


def test_structured_mode_is_accepted():
    """A structured-mode event decodes with its data re-serialized as JSON."""
    body = {"specversion": "1.0", "id": "e1", "source": "/sipd", "type": "x.y.v1",
            "time": "2026-01-05T10:00:00Z", "correlationid": "c1", "data": {"n": 5}}
    event = decode(json.dumps(body).encode(), [("content-type", b"application/cloudevents+json")])
    assert (event.id, event.source, event.correlation_id) == ("e1", "/sipd", "c1")
    assert json.loads(event.data) == {"n": 5}


def test_structured_mode_without_content_type_is_recognised():
    """A structured event sent without a content-type header still decodes."""
    body = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "x.v1", "data": {}}
    assert decode(json.dumps(body).encode(), []).id == "e1"


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"\x00\xff", [], "lacks required"),
        (b"{}", [("ce_id", b"1"), ("ce_source", b"s"), ("ce_specversion", b"1.0")], "type"),
        (b"{}", [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"0.3")], "specversion"),
        (b"{}", [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"1.0"),
                 ("content-type", b"text/xml")], "content-type"),
        (b"{}", [("ce_id", b"\xff"), ("ce_source", b"s")], "UTF-8"),
        (b"[1]", [("content-type", b"application/cloudevents+json")], "JSON object"),
        (b"{}", [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"1.0"),
                 ("ce_time", b"yesterday")], "RFC 3339"),
        (None, [], "no value"),
    ],
)
def test_unreadable_records_raise_with_a_reason(value, headers, reason):
    """Every way a record can be unreadable yields an EnvelopeError naming the cause."""
    with pytest.raises(EnvelopeError, match=reason):
        decode(value, headers)


def test_data_that_is_not_json_is_an_envelope_error():
    """Binary-mode data that is not JSON is reported, not crashed on."""
    event = CloudEvent.new(source="s", type="t.v1", data=b"not json")
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        event.data_json()
