"""Who may do what on the Kafka cluster: one principal per service and per outside system.

- each service writes only its own events topic and the dead-letter twins of what it reads,
  reads only the topics it consumes, in consumer groups named after it (a prefix);
- each regency's finance system (`regency-5201` ...) writes only its own
  `ntb.commitments.inbound.<code>`; BPJS Ketenagakerjaan (`bpjs`) only `ntb.bpjs.realization`;
- nobody but the administrator (a super user: topics, ACLs) writes `ntb.commitments.inbound`.

Every principal may describe its topics and their configuration (the start-up check reads
`min.insync.replicas`). Writing implies the idempotent producer's right (KIP-679).

`python -m shared.kafka_acls [PREFIX]` prints the bindings as `kafka-acls.sh` commands for an
operator; deploy/local/kafka_acls.py applies them to the local secured stack.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .contracts import topics as t
from .contracts.topics import dlq, regional_inbound
from .regions import regions

SERVICES_PRODUCE = {
    "invitations": [t.INVITATIONS_EVENTS],
    "commitments": [t.COMMITMENTS_EVENTS],
    "notifications": [t.NOTIFICATIONS_EVENTS],
}
SERVICES_CONSUME = {
    "invitations": [],
    "commitments": [t.INVITATIONS_EVENTS, t.COMMITMENTS_INBOUND, *t.REGIONAL_INBOUND, t.REALIZATION_INBOUND],
    "notifications": [t.INVITATIONS_EVENTS, t.COMMITMENTS_EVENTS],
}
ADMIN = "admin"
BPJS = "bpjs"


def regency_principal(region_code: str) -> str:
    return "regency-" + region_code.replace(".", "")


def outside_systems() -> dict[str, str]:
    """principal -> the one inbound topic it may write."""
    systems = {regency_principal(code): regional_inbound(code) for code in regions()}
    systems[BPJS] = t.REALIZATION_INBOUND
    return systems


def principals() -> list[str]:
    return [ADMIN, *SERVICES_PRODUCE, *outside_systems()]


@dataclass(frozen=True)
class Binding:
    principal: str
    operations: tuple[str, ...]
    resource: str           # topic | group
    name: str
    pattern: str = "LITERAL"  # LITERAL | PREFIXED


def bindings(prefix: str = "") -> list[Binding]:
    found: list[Binding] = []
    for service, produces in SERVICES_PRODUCE.items():
        consumes = SERVICES_CONSUME[service]
        writes = [*produces, *(dlq(topic) for topic in consumes)]
        found += [Binding(service, ("Write", "Describe", "DescribeConfigs"), "topic", prefix + x) for x in writes]
        found += [Binding(service, ("Read", "Describe", "DescribeConfigs"), "topic", prefix + x) for x in consumes]
        if consumes:
            found.append(Binding(service, ("Read", "Describe"), "group", prefix + service, "PREFIXED"))
    for system, topic in outside_systems().items():
        found.append(Binding(system, ("Write", "Describe"), "topic", prefix + topic))
    return found


def kafka_acls_commands(prefix: str = "") -> list[str]:
    lines = []
    for b in bindings(prefix):
        ops = " ".join(f"--operation {op}" for op in b.operations)
        lines.append(f"kafka-acls.sh --bootstrap-server $KAFKA --command-config admin.properties --add "
                     f"--allow-principal User:{b.principal} {ops} --{b.resource} {b.name} "
                     f"--resource-pattern-type {b.pattern.lower()}")
    return lines


if __name__ == "__main__":
    print("\n".join(kafka_acls_commands(sys.argv[1] if len(sys.argv) > 1 else "")))
