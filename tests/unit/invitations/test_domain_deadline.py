"""The RSVP deadline comes before the meeting, not at its start."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, strategies as st

from services.invitations import domain

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_answers_close_twelve_hours_ahead_or_at_the_start_at_short_notice():
    assert domain.rsvp_deadline(NOW + timedelta(days=10), NOW, timedelta(hours=12)) == NOW + timedelta(days=10, hours=-12)
    assert domain.rsvp_deadline(NOW + timedelta(hours=2), NOW, timedelta(hours=12)) == NOW + timedelta(hours=2)


@given(st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=400)),
       st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_the_deadline_is_never_after_the_start_nor_already_past(ahead, closes_before):
    start = NOW + ahead
    deadline = domain.rsvp_deadline(start, NOW, closes_before)
    assert NOW < deadline <= start


def test_an_answer_after_the_deadline_is_refused():
    domain.ensure_before_deadline(NOW + timedelta(seconds=1), NOW)
    with pytest.raises(domain.Conflict):
        domain.ensure_before_deadline(NOW, NOW)
