"""On the secured stack (LOCAL_KAFKA_SECURITY=sasl_ssl) every principal is refused where its ACL
says so, seen through librdkafka (confluent-kafka), a client the services do not use.

The ACLs of shared.contracts.kafka_acls are applied for this test's own topic prefix, so runs never share
topics; the SCRAM users and their passwords are the stack's (deploy/local/kafka.sh)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from services.commitments.bootstrap import build
from services.commitments.settings import CommitmentsSettings
from shared.contracts import registry
from shared.contracts.commitments import SubmitCommitment
from shared.contracts.topics import (
    COMMITMENTS_EVENTS,
    COMMITMENTS_INBOUND,
    INVITATIONS_EVENTS,
    REALIZATION_INBOUND,
    dlq,
    regional_inbound,
)
from shared.platform import topic_plan
from shared.platform.envelope import CloudEvent
from shared.platform.kafka_security import KafkaSecurity
from tests.integration.commitments.helpers import bpu_commitment
from tests.integration.conftest import BOOTSTRAP, ROOT, eventually, http_client, read_topic, service_settings

sys.path.insert(0, str(ROOT / "deploy" / "local"))
from kafka_acls import apply as apply_acls, librdkafka_config

SECURED = os.environ.get("LOCAL_KAFKA_SECURITY") == "sasl_ssl"
SECRETS = Path(os.environ.get("LOCAL_STACK_DIR", ROOT / ".local")) / "kafka-secured" / "secrets"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not SECURED, reason="needs the secured local stack (LOCAL_KAFKA_SECURITY=sasl_ssl)")]
DENIED_TOPIC = KafkaError.TOPIC_AUTHORIZATION_FAILED


def login(principal: str, password_file: Path | None = None) -> KafkaSecurity:
    return KafkaSecurity(security_protocol="SASL_SSL", sasl_username=principal,
                         sasl_password_file=password_file or SECRETS / f"{principal}.password",
                         ssl_cafile=SECRETS / "ca.pem")


@pytest.fixture
async def prefix(topic_prefix: str) -> str:
    """This test's topics, provisioned by the administrator, with the project's ACLs on them."""
    await asyncio.to_thread(apply_acls, topic_prefix, bootstrap=BOOTSTRAP)
    specs = topic_plan.plan(topic_prefix)
    await topic_plan.apply(BOOTSTRAP, specs)
    # The broker applies metadata in order: once it serves the topics created after the ACLs, it
    # enforces those ACLs too. Without this wait a broker still busy deleting the previous
    # test's topics refused a principal's first request (DefaultDeny on a just-granted topic).
    admin = await topic_plan._admin(BOOTSTRAP, None)  # noqa: SLF001
    try:
        async def served() -> bool:
            states = await topic_plan.describe(admin, [s.name for s in specs])
            return all(state.exists and state.partitions == spec.partitions
                       for spec, state in zip(specs, (states[s.name] for s in specs), strict=True))
        await eventually(served, timeout=60)
    finally:
        await admin.close()
    return topic_prefix


def produce(principal: str, topic: str, value: bytes = b"{}", headers: list | None = None,
            key: bytes = b"k") -> int | None:
    """The error code of one acks=all send as `principal`, or None when the broker took it."""
    outcome: list[KafkaError | None] = []
    producer = Producer(librdkafka_config(login(principal), BOOTSTRAP)
                        | {"acks": "all", "enable.idempotence": True, "message.timeout.ms": 20000})
    producer.produce(topic, value=value, key=key, headers=headers or [],
                     on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(30)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0].code() if outcome[0] is not None else None


def consume_error(principal: str, topic: str, group: str) -> int | None:
    consumer = Consumer(librdkafka_config(login(principal), BOOTSTRAP)
                        | {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        for _ in range(20):
            message = consumer.poll(1.0)
            if message is not None and message.error() is not None:
                return message.error().code()
            if message is not None or consumer.assignment():
                return None
        return None
    except KafkaException as exc:
        return exc.args[0].code()
    finally:
        consumer.close()


async def test_each_regency_and_bpjs_may_write_only_the_inbound_topic_it_is_for(prefix: str) -> None:
    assert produce("regency-5204", prefix + regional_inbound("52.04")) is None
    assert produce("regency-5204", prefix + regional_inbound("52.05")) == DENIED_TOPIC
    assert produce("regency-5204", prefix + COMMITMENTS_INBOUND) == DENIED_TOPIC
    assert produce("regency-5204", prefix + REALIZATION_INBOUND) == DENIED_TOPIC
    assert produce("regency-5204", prefix + COMMITMENTS_EVENTS) == DENIED_TOPIC
    assert produce("bpjs", prefix + REALIZATION_INBOUND) is None
    assert produce("bpjs", prefix + regional_inbound("52.01")) == DENIED_TOPIC
    assert produce("bpjs", prefix + dlq(REALIZATION_INBOUND)) == DENIED_TOPIC


async def test_each_service_writes_only_its_own_topics_and_the_dead_letters_of_what_it_reads(prefix: str) -> None:
    assert produce("invitations", prefix + INVITATIONS_EVENTS) is None
    assert produce("invitations", prefix + COMMITMENTS_EVENTS) == DENIED_TOPIC
    assert produce("invitations", prefix + regional_inbound("52.01")) == DENIED_TOPIC
    assert produce("notifications", prefix + INVITATIONS_EVENTS) == DENIED_TOPIC
    assert produce("notifications", prefix + dlq(INVITATIONS_EVENTS)) is None
    assert produce("commitments", prefix + COMMITMENTS_EVENTS) is None
    assert produce("commitments", prefix + regional_inbound("52.01")) == DENIED_TOPIC


async def test_a_service_reads_only_what_it_consumes_in_its_own_groups(prefix: str) -> None:
    assert consume_error("invitations", prefix + COMMITMENTS_EVENTS, prefix + "invitations") in (
        DENIED_TOPIC, KafkaError.GROUP_AUTHORIZATION_FAILED)
    assert consume_error("notifications", prefix + INVITATIONS_EVENTS, prefix + "notifications") is None
    assert consume_error("notifications", prefix + INVITATIONS_EVENTS, prefix + "commitments") == \
        KafkaError.GROUP_AUTHORIZATION_FAILED
    assert consume_error("regency-5201", prefix + regional_inbound("52.01"), prefix + "regency") in (
        DENIED_TOPIC, KafkaError.GROUP_AUTHORIZATION_FAILED)


async def test_a_wrong_password_is_refused_at_login(tmp_path: Path) -> None:
    wrong = tmp_path / "pw"
    wrong.write_text(uuid.uuid4().hex)
    producer = Producer(librdkafka_config(login("regency-5201", wrong), BOOTSTRAP) | {"message.timeout.ms": 8000})
    errors: list[KafkaError] = []
    producer.produce("anything", b"x", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(15)
    assert errors and errors[0] is not None


async def test_commitments_runs_as_its_own_principal_and_binds_each_regency_to_its_topic(
    prefix: str, schema_for, db, cleanup_schemas
) -> None:
    """The service starts with only its ACLs (topics verified, not created); a regency that writes
    another regency's submission on its own topic is dead-lettered with the reason."""
    schema = schema_for("com")
    settings = service_settings(CommitmentsSettings, prefix, schema, topics_provision="verify",
                                kafka_security=login("commitments"))
    runtime, app = build(settings)
    await runtime.start()
    try:
        from shared.contracts.roles import Role
        from tests.integration.conftest import issue_key

        async with http_client(app, runtime) as client:
            token = await issue_key(runtime, Role.ORGANIZER)
            r = await client.post("/commitments/requests", json={"regions": ["52.04", "52.05"]},
                                  headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
        for submission_id, region in (("own", "52.04"), ("foreign", "52.05")):
            command = SubmitCommitment.model_validate(bpu_commitment(region=region) | {"submission_id": submission_id})
            spec = registry.spec_for(command)
            event = CloudEvent.new(source="/sipd/5204", type=spec.type, data=command.model_dump_json().encode())
            assert produce("regency-5204", prefix + regional_inbound("52.04"), event.data,
                           [(k, v) for k, v in event.to_headers()], region.encode()) is None
        await eventually(lambda: db.fetchval(
            f'SELECT status = $2 FROM "{schema}".commitments WHERE region_code = $1', "52.04", "submitted"))
        (dead,) = await read_topic(dlq(prefix + regional_inbound("52.04")), expect=1, timeout=30)
        assert "does not match the sender's region 52.04" in dict(dead.headers)["dlq_reason"].decode()
        assert json.loads(dead.value)["region_code"] == "52.05"
    finally:
        await runtime.stop()
