"""Apply shared.contracts.kafka_acls to the local secured broker (called by kafka.sh; tests use `apply`).

    python deploy/local/kafka_acls.py [PREFIX]

Uses confluent-kafka's admin client (aiokafka has no ACL calls), logged in as the stack's
administrator from the KAFKA_* variables `kafka.sh env` prints. Creating a binding twice is
a no-op on the broker, so this is idempotent.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType

from shared.contracts.kafka_acls import bindings
from shared.platform.kafka_security import KafkaSecurity


def librdkafka_config(security: KafkaSecurity, bootstrap: str) -> dict[str, Any]:
    """The same security, in librdkafka's words (tests log in as other principals with it)."""
    return {"bootstrap.servers": bootstrap, **security.librdkafka_options()}


def apply(prefix: str = "", *, bootstrap: str | None = None, security: KafkaSecurity | None = None) -> int:
    admin = AdminClient(librdkafka_config(security or KafkaSecurity(),
                                          bootstrap or os.environ["KAFKA_BOOTSTRAP_SERVERS"]))
    wanted = [
        AclBinding(ResourceType[b.resource.upper()], b.name, ResourcePatternType[b.pattern], f"User:{b.principal}",
                   "*", AclOperation[_op(op)], AclPermissionType.ALLOW)
        for b in bindings(prefix) for op in b.operations
    ]
    for future in admin.create_acls(wanted, request_timeout=30).values():
        future.result()
    return len(wanted)


def _op(name: str) -> str:
    return {"DescribeConfigs": "DESCRIBE_CONFIGS"}.get(name, name.upper())


if __name__ == "__main__":
    count = apply(sys.argv[1] if len(sys.argv) > 1 else "")
    print(f"[kafka] {count} ACL bindings in place")
