"""Topics come from `ntbctl topics apply`; a service refuses to start without them."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from services.commitments.bootstrap import build
from services.commitments.settings import CommitmentsSettings
from shared.contracts.topics import ALL, PROVISIONED, dlq
from shared.platform import topic_plan
from shared.platform.kafka_security import from_env

from .conftest import BOOTSTRAP, ROOT, service_settings

pytestmark = pytest.mark.integration


def ntbctl(*args: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "TOPIC_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "shared.ntbctl.commands", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


async def test_topics_apply_creates_every_topic_once_and_reports_it(topic_prefix: str) -> None:
    first = ntbctl("topics", "apply", prefix=topic_prefix)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created  ") == 2 * len(PROVISIONED)
    second = ntbctl("topics", "apply", prefix=topic_prefix)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and second.stdout.count("ok       ") == 2 * len(PROVISIONED)
    admin = await topic_plan._admin(BOOTSTRAP, None)  # noqa: SLF001 - the same admin client
    try:
        states = await topic_plan.describe(admin, [topic_prefix + t for t in ALL])
    finally:
        await admin.close()
    assert all(s.exists and s.partitions == 3 and s.replication == 1 for s in states.values())


async def test_a_service_refuses_to_start_when_its_topics_are_missing(
    topic_prefix: str, schema_for, cleanup_schemas
) -> None:
    settings = service_settings(CommitmentsSettings, topic_prefix, schema_for("commitments"),
                                topics_provision="verify")
    runtime, _ = build(settings)
    with pytest.raises(topic_plan.TopicsNotProvisioned) as refused:
        await runtime.start()
    assert any(p.endswith(": missing") and topic_prefix in p for p in refused.value.problems)
    await runtime.stop()


async def test_a_service_refuses_topics_with_fewer_replicas_than_it_requires(
    topic_prefix: str, schema_for, cleanup_schemas
) -> None:
    assert ntbctl("topics", "apply", prefix=topic_prefix).returncode == 0
    settings = service_settings(CommitmentsSettings, topic_prefix, schema_for("commitments"),
                                topics_provision="verify", topic_replication=3, topic_min_insync_replicas=2)
    runtime, _ = build(settings)
    with pytest.raises(topic_plan.TopicsNotProvisioned) as refused:
        await runtime.start()
    assert f"{topic_prefix}{dlq(ALL[3])}: replication factor 1 < 3" in refused.value.problems
    await runtime.stop()
    # Provisioned as it requires (here: RF 1 on one broker), the same service starts.
    ok = service_settings(CommitmentsSettings, topic_prefix, schema_for("commitments"), topics_provision="verify")
    runtime, _ = build(ok)
    await runtime.start()
    await runtime.stop()


def _librdkafka_admin() -> Any:
    # The operator's side of the next test: another client (librdkafka) than the one apply uses.
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": BOOTSTRAP, **from_env().librdkafka_options()})


def _topic_configs(admin: Any, topic: str) -> dict[str, Any]:
    from confluent_kafka.admin import ConfigResource

    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {name: entry for name, entry in future.result(timeout=30).items()}


async def test_apply_raises_min_insync_and_keeps_the_configs_an_operator_set(topic_prefix: str) -> None:
    """Raising min.insync.replicas changes that one entry: retention and compaction set by hand stay."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    assert ntbctl("topics", "apply", prefix=topic_prefix).returncode == 0
    topic = topic_prefix + PROVISIONED[0]
    operator = _librdkafka_admin()
    change = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "123456789", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET),
    ])
    for future in operator.incremental_alter_configs([change]).values():
        future.result(timeout=30)
    # min.insync.replicas 2 is what a production plan asks; on the one local broker the topics
    # keep RF 1, which apply reports (exit 1: "reassign partitions by hand") but does not stop at.
    raised = ntbctl("topics", "apply", "--replication", "2", "--min-insync", "2", prefix=topic_prefix)
    assert raised.returncode == 1, raised.stderr
    assert f"{topic} (replication 1 < 2: reassign partitions by hand; min.insync.replicas 1 -> 2)" in raised.stdout
    configs = _topic_configs(operator, topic)
    assert configs["min.insync.replicas"].value == "2"
    assert configs["retention.ms"].value == "123456789" and not configs["retention.ms"].is_default
    assert configs["max.message.bytes"].value == "2000000"
    # Every topic of the plan got the raise, and a second apply finds nothing left to raise.
    for name in (topic_prefix + t for t in PROVISIONED):
        for each in (name, dlq(name)):
            assert _topic_configs(operator, each)["min.insync.replicas"].value == "2", each
    again = ntbctl("topics", "apply", "--replication", "2", "--min-insync", "2", prefix=topic_prefix)
    assert "min.insync.replicas 1 -> 2" not in again.stdout
