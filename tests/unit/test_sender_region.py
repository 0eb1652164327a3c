"""An event on a regency's own inbound topic must be for that regency."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from shared.contracts.regions import regions
from shared.contracts.topics import COMMITMENTS_INBOUND, REGIONAL_INBOUND, dlq, regional_inbound
from shared.platform.errors import Forbidden
from shared.platform.sender_region import check, topic_region

CODES = sorted(regions())


@pytest.mark.parametrize("prefix", ["", "t1234.", "staging."])
def test_each_regional_topic_names_its_region_under_any_prefix(prefix: str) -> None:
    for code in CODES:
        assert topic_region(prefix + regional_inbound(code)) == code
    assert len(REGIONAL_INBOUND) == len(CODES) == 10


@given(own=st.sampled_from(CODES), other=st.sampled_from(CODES), sipd=st.booleans())
def test_a_regency_submits_for_itself_only(own: str, other: str, sipd: bool) -> None:
    written = other.replace(".", "") if sipd else other
    if own == other:
        check(regional_inbound(own), written)
    else:
        with pytest.raises(Forbidden, match=f"does not match the sender's region {own}"):
            check(regional_inbound(own), written)


@given(topic=st.one_of(st.text(max_size=60), st.sampled_from(
    [COMMITMENTS_INBOUND, dlq(regional_inbound("52.01")), COMMITMENTS_INBOUND + ".", COMMITMENTS_INBOUND + ".9999",
     COMMITMENTS_INBOUND + ".52.01", COMMITMENTS_INBOUND + ".5201\n", COMMITMENTS_INBOUND + ".\x005201"])))
def test_other_topics_bind_no_region(topic: str) -> None:
    if topic.endswith(tuple(REGIONAL_INBOUND)) and topic_region(topic) is not None:
        return  # text that happens to end in a real regional topic name
    assert topic_region(topic) is None
    check(topic, "52.72")  # no binding: the contract's own region validation applies
