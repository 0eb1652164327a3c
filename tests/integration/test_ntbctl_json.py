"""ntbctl -o json against the real broker and database, run as operators run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer

from shared.platform.dead_letter import KafkaRecord, dead_letter_headers
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP, DSN, ROOT

pytestmark = [pytest.mark.integration]


def ntbctl(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "NTB_ENV")}
    return subprocess.run([sys.executable, "-m", "shared.ntbctl.commands", *args, "--bootstrap-servers", BOOTSTRAP,
                           "--database-url", DSN], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


async def test_dead_letters_and_lag_as_json(topic_prefix):
    topic = topic_prefix + "ntb.commitments.inbound"
    original = KafkaRecord(topic, 0, 9, b"52.04", b'{"x": 1}', (("ce_id", b"e-9"), ("ce_type", b"t.v1")))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", **client_options())
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic + ".dlq", value=original.value, key=original.key,
                                            headers=dead_letter_headers(original, reason="invalid: x=1 is not a total",
                                                                        consumer="commitments"))
    finally:
        await producer.stop()

    listed = ntbctl("-o", "json", "dlq", "list", "--topic", topic + ".dlq")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["topic"] == topic + ".dlq" and row["partition"] == meta.partition and row["offset"] == meta.offset
    assert row["reason"] == "invalid: x=1 is not a total" and row["type"] == "t.v1"

    shown = ntbctl("dlq", "show", topic + ".dlq", str(meta.partition), str(meta.offset), "-o", "json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["key"] == "52.04" and ["dlq_original_offset", "9"] in record["headers"]  # as sent, in order
    assert record["value"] == '{"x": 1}'

    missing = ntbctl("dlq", "show", topic + ".dlq", str(meta.partition), str(meta.offset + 5))
    assert missing.returncode == 1 and missing.stderr.strip().startswith("ntbctl: no record at")
    assert missing.stderr.count("\n") == 1

    lag = ntbctl("lag", "-o", "json")
    assert lag.returncode == 0, lag.stderr
    assert isinstance(json.loads(lag.stdout), list)
