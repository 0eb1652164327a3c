"""Topics are provisioned from one definition, not auto-created by whoever writes first.

`ntbctl topics apply` creates every topic of `plan()` (each topic of
shared.contracts.topics and its dead-letter twin) with the partitions, replication factor
and `min.insync.replicas` given, and raises `min.insync.replicas` on topics that have less.
The raise is an IncrementalAlterConfigs of that one entry (shared.platform.kafka_configs): every other
config an operator set on the topic (retention, compaction, ...) stays as it was.
It never lowers anything and cannot change a replication factor (that is a partition
reassignment, an operator's decision): it reports such a topic instead.

At start a service checks the topics it reads and writes (`verify`): a missing topic, fewer
replicas than `topic_replication` or a lower `min.insync.replicas` than
`topic_min_insync_replicas` stops the start with the list of problems. Refusing beats a
warning here: a service running against an RF 1 topic looks healthy while `acks=all` means
one copy, and one running against a missing topic would either fail every send or, on a
cluster with auto-creation on, create it with the broker's defaults. In Kubernetes the
failed start shows as a crash loop with the reason in the log until the topics Job ran.
Partitions with a shrunken ISR (a broker down) are logged, not refused: that is a
transient state the cluster heals, and refusing then would turn one broker's outage into
an outage of every service restarting at that moment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared.contracts.topics import PROVISIONED, dlq
from shared.platform.kafka_configs import set_topic_configs
from shared.platform.kafka_security import KafkaSecurity, bootstrap_list, from_env
from shared.platform.logging import get_logger

log = get_logger(__name__)

MIN_INSYNC = "min.insync.replicas"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    min_insync: int


def plan(prefix: str = "", *, partitions: int = 3, replication: int = 1, min_insync: int | None = None,
         names: Iterable[str] = PROVISIONED) -> list[TopicSpec]:
    """Every topic and its dead-letter twin. Production: replication 3, min_insync 2."""
    if min_insync is None:
        min_insync = min(2, replication)
    if not 1 <= min_insync <= replication:
        raise ValueError(f"min.insync.replicas {min_insync} must be between 1 and the replication factor {replication}")
    return [TopicSpec(prefix + t, partitions, replication, min_insync) for base in names for t in (base, dlq(base))]


@dataclass(frozen=True)
class TopicState:
    name: str
    exists: bool
    partitions: int = 0
    replication: int = 0
    min_insync: int = 0
    under_replicated: int = 0


async def _admin(bootstrap: str, security: KafkaSecurity | None) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_list(bootstrap), request_timeout_ms=15000,
                                **(security or from_env()).aiokafka_options())
    await admin.start()
    return admin


async def describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, TopicState]:
    names = list(dict.fromkeys(names))
    existing = set(await admin.list_topics())
    states = {n: TopicState(n, False) for n in names if n not in existing}
    present = [n for n in names if n in existing]
    if present:
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, {MIN_INSYNC: None}) for n in present]
        )
        min_insync: dict[str, int] = {}
        for response in configs:
            for resource in response.resources:
                _, _, _, topic, entries = resource[:5]
                for entry in entries:
                    if entry[0] == MIN_INSYNC:
                        min_insync[topic] = int(entry[1])
        for described in await admin.describe_topics(present):
            partitions = described["partitions"]
            states[described["topic"]] = TopicState(
                described["topic"], described["error_code"] == 0, len(partitions),
                min((len(p["replicas"]) for p in partitions), default=0),
                min_insync.get(described["topic"], 1),
                sum(1 for p in partitions if len(p["isr"]) < len(p["replicas"])),
            )
    return states


async def apply(bootstrap: str, specs: Sequence[TopicSpec], *, security: KafkaSecurity | None = None) -> list[str]:
    """Create what is missing, raise min.insync.replicas where lower; one report line per topic."""
    admin = await _admin(bootstrap, security)
    report: list[str] = []
    try:
        states = await describe(admin, [s.name for s in specs])
        missing = [s for s in specs if not states[s.name].exists]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica or Job created it first
                await admin.create_topics([
                    NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication,
                             topic_configs={MIN_INSYNC: str(s.min_insync)})
                    for s in missing
                ])
        raise_insync = []
        for spec in specs:
            state = states[spec.name]
            if not state.exists:
                report.append(f"created  {spec.name} partitions={spec.partitions} replication={spec.replication} "
                              f"min.insync.replicas={spec.min_insync}")
                continue
            notes = []
            if state.replication < spec.replication:
                notes.append(f"replication {state.replication} < {spec.replication}: reassign partitions by hand")
            if state.partitions < spec.partitions:
                notes.append(f"partitions {state.partitions} < {spec.partitions}: not increased (keys would move)")
            if state.min_insync < spec.min_insync:
                raise_insync.append(spec)
                notes.append(f"min.insync.replicas {state.min_insync} -> {spec.min_insync}")
            report.append(f"{'changed ' if notes else 'ok       '}{spec.name}" + (f" ({'; '.join(notes)})" if notes else ""))
        # Only this one entry: AlterConfigs would reset the topic's other dynamic configs.
        await set_topic_configs(admin, {s.name: {MIN_INSYNC: str(s.min_insync)} for s in raise_insync})
    finally:
        await admin.close()
    return report


def problems(states: dict[str, TopicState], *, replication: int, min_insync: int) -> list[str]:
    found = []
    for state in states.values():
        if not state.exists:
            found.append(f"{state.name}: missing")
            continue
        if state.replication < replication:
            found.append(f"{state.name}: replication factor {state.replication} < {replication}")
        if state.min_insync < min_insync:
            found.append(f"{state.name}: min.insync.replicas {state.min_insync} < {min_insync}")
    return found


async def verify(bootstrap: str, names: Sequence[str], *, replication: int, min_insync: int,
                 security: KafkaSecurity | None = None) -> None:
    """Raise TopicsNotProvisioned unless every topic exists with the replication wanted."""
    admin = await _admin(bootstrap, security)
    try:
        states = await describe(admin, names)
    finally:
        await admin.close()
    found = problems(states, replication=replication, min_insync=min_insync)
    if found:
        raise TopicsNotProvisioned(found)
    shrunk = {s.name: s.under_replicated for s in states.values() if s.under_replicated}
    if shrunk:
        log.warning("topics have under-replicated partitions (a broker is down?)", partitions=shrunk)


class TopicsNotProvisioned(RuntimeError):
    def __init__(self, found: list[str]) -> None:
        super().__init__("topics not provisioned (run `ntbctl topics apply`): " + "; ".join(found))
        self.problems = found


def summary(specs: Sequence[TopicSpec]) -> list[dict[str, Any]]:
    return [{"topic": s.name, "partitions": s.partitions, "replication": s.replication,
             "min.insync.replicas": s.min_insync} for s in specs]
