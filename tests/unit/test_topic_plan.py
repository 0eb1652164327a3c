"""The one topic definition and the start-up verdict on what the cluster has."""

from __future__ import annotations

import pytest

from shared.contracts.topics import PROVISIONED, dlq
from shared.platform.topic_plan import TopicState, plan, problems


def test_the_plan_holds_every_topic_and_its_dead_letter_twin() -> None:
    names = [s.name for s in plan("p.")]
    assert names == [n for t in PROVISIONED for n in ("p." + t, "p." + dlq(t))]


def test_production_settings_mean_three_replicas_and_two_in_sync() -> None:
    specs = plan(partitions=6, replication=3)
    assert {(s.partitions, s.replication, s.min_insync) for s in specs} == {(6, 3, 2)}
    assert {s.min_insync for s in plan(replication=1)} == {1}


@pytest.mark.parametrize("replication,min_insync", [(3, 4), (1, 2), (3, 0)])
def test_a_min_insync_the_replicas_cannot_meet_is_refused(replication: int, min_insync: int) -> None:
    with pytest.raises(ValueError, match="must be between 1 and the replication factor"):
        plan(replication=replication, min_insync=min_insync)


def test_missing_under_replicated_and_weak_topics_are_problems_a_shrunk_isr_is_not() -> None:
    states = {
        "a": TopicState("a", False),
        "b": TopicState("b", True, 3, 1, 1),
        "c": TopicState("c", True, 3, 3, 1),
        "d": TopicState("d", True, 3, 3, 2, under_replicated=3),
    }
    found = problems(states, replication=3, min_insync=2)
    assert found == ["a: missing", "b: replication factor 1 < 3", "b: min.insync.replicas 1 < 2",
                     "c: min.insync.replicas 1 < 2"]
    assert problems({"d": states["d"]}, replication=3, min_insync=2) == []
