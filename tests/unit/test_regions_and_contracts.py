"""Reference data and event contracts."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.contracts import registry
from shared.contracts.invitations import MeetingScheduled
from shared.contracts.regions import normalize_region_code, regions
from shared.contracts.registry import EventPayload, EventRegistry, UnknownEventType


def test_ten_regions_with_kemendagri_codes():
    """NTB has ten regencies/cities, 52.01-52.08, 52.71 and 52.72."""
    assert list(regions()) == ["52.01", "52.02", "52.03", "52.04", "52.05", "52.06", "52.07", "52.08", "52.71", "52.72"]
    assert regions()["52.71"].name == "Kota Mataram"


def test_sipd_codes_without_dots_are_normalized():
    """SIPD's 5204 is the same region as 52.04."""
    assert normalize_region_code("5204") == "52.04"
    assert normalize_region_code(" 52.72 ") == "52.72"


@pytest.mark.parametrize("code", ["52.09", "5301", "", "52", "lombok"])
def test_unknown_region_codes_are_refused(code):
    """A code outside NTB's ten regions is an error naming the valid ones."""
    with pytest.raises(ValueError, match="unknown region code"):
        normalize_region_code(code)


def test_every_event_type_is_versioned_and_past_tense_registered():
    """Registered types end in .vN and map to their payload model and topic."""
    spec = registry.spec("ntb.invitations.meeting.scheduled.v1")
    assert spec.model is MeetingScheduled
    assert spec.topic == "ntb.invitations.events"
    for spec in registry:
        assert spec.type.rsplit(".", 1)[-1][1:].isdigit()


def test_unknown_type_lookup_raises():
    """Looking up an unregistered type raises UnknownEventType."""
    with pytest.raises(UnknownEventType):
        registry.spec("ntb.nothing.v1")


def test_registry_refuses_unversioned_and_duplicate_types():
    """A type without .vN, or registered twice, is a programming error."""
    local = EventRegistry()
    with pytest.raises(ValueError, match="version"):
        local.event("a.b.c", topic="t", key=str)
    local.event("a.b.v1", topic="t", key=str)(type("A", (EventPayload,), {}))
    with pytest.raises(ValueError, match="twice"):
        local.event("a.b.v1", topic="t", key=str)(type("B", (EventPayload,), {}))


def _meeting(**overrides):
    start = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    data = dict(meeting_id=uuid.uuid4(), title="Rakor", starts_at=start, ends_at=start + timedelta(hours=3),
                venue="Pendopo", organizer="Wakil Gubernur NTB")
    return MeetingScheduled(**(data | overrides))


def test_payloads_are_frozen():
    """Event payloads are immutable facts."""
    with pytest.raises(ValidationError):
        _meeting().title = "changed"


def test_payloads_ignore_fields_added_by_newer_producers():
    """An optional field added later does not break an older consumer."""
    dumped = _meeting().model_dump(mode="json") | {"added_later": 1}
    assert MeetingScheduled.model_validate(dumped).title == "Rakor"


def test_payload_rejects_end_before_start():
    """A meeting that ends before it starts is not a valid fact."""
    start = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="ends_at"):
        _meeting(starts_at=start, ends_at=start - timedelta(minutes=1))


def test_payload_fields_are_described_for_integrators():
    """Every payload field has a description (it feeds the published contract)."""
    for spec in registry:
        for name, field in spec.model.model_fields.items():
            assert field.description, f"{spec.type}.{name} has no description"
