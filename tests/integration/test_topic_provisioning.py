"""Topics come from `ntbctl topics apply`; a service refuses to start without them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.commitments.bootstrap import build
from services.commitments.settings import CommitmentsSettings
from shared import topic_plan
from shared.contracts.topics import ALL, PROVISIONED, dlq

from .conftest import BOOTSTRAP, ROOT, service_settings

pytestmark = pytest.mark.integration


def ntbctl(*args: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "TOPIC_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "shared.ops", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


async def test_topics_apply_creates_every_topic_once_and_reports_it(topic_prefix: str) -> None:
    first = ntbctl("topics", "apply", prefix=topic_prefix)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created  ") == 2 * len(PROVISIONED)
    second = ntbctl("topics", "apply", prefix=topic_prefix)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and second.stdout.count("ok       ") == 2 * len(PROVISIONED)
    admin = await topic_plan._admin(BOOTSTRAP, None)
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
