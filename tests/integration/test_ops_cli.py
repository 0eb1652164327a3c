"""The operators' CLI against the real broker: list, show and replay dead letters."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from shared.ntbctl import commands as ops
from shared.platform.dead_letter import KafkaRecord, dead_letter_headers
from shared.platform.kafka_security import client_options

from .conftest import BOOTSTRAP, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_dead_letter_is_listed_shown_and_replayed_unchanged(topic_prefix, monkeypatch, capsys):
    """A dead letter lists with its reason and replays to its original topic without the dlq_ headers."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
    original_topic = topic_prefix + "ntb.commitments.inbound"
    original = KafkaRecord(original_topic, 1, 42, b"52.04", b'{"x": 1}',
                           (("ce_id", b"e-1"), ("ce_type", b"t.v1"), ("x-null", None), ("x-empty", b""),
                            ("x-twice", b"1"), ("x-twice", b"2"), ("x-bytes", b"\xff\x00")))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", **client_options())
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            original_topic + ".dlq", value=original.value, key=original.key,
            headers=dead_letter_headers(original, reason="rejected: totals disagree", consumer="commitments"),
        )
    finally:
        await producer.stop()

    await ops.dlq_list(original_topic + ".dlq", 100)
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(original_topic)]
    assert len(listed) == 1 and "rejected: totals disagree" in listed[0] and "t.v1" in listed[0]

    await ops.dlq_show(original_topic + ".dlq", meta.partition, meta.offset)
    out = capsys.readouterr().out
    document, _, value = out[out.index("{\n"):].partition("\n}\n")
    shown = json.loads(document + "\n}")
    # Every header as sent, in order, duplicates kept, NULL (null) told apart from empty (""), bytes as hex.
    assert shown["headers"][:7] == [["ce_id", "e-1"], ["ce_type", "t.v1"], ["x-null", None], ["x-empty", ""],
                                    ["x-twice", "1"], ["x-twice", "2"], ["x-bytes", {"hex": "ff00"}]]
    assert ["dlq_original_offset", "42"] in shown["headers"] and value.strip() == '{"x": 1}'

    await ops.dlq_replay(original_topic + ".dlq", meta.partition, meta.offset)
    [replayed] = await read_topic(original_topic, expect=1)
    headers = dict(replayed.headers)
    assert (replayed.key, replayed.value) == (b"52.04", b'{"x": 1}')
    assert headers["ce_id"] == b"e-1" and not any(k.startswith("dlq_reason") for k in headers)
    assert [h for h in replayed.headers if h[0] == "x-twice"] == [("x-twice", b"1"), ("x-twice", b"2")]
    assert ("x-null", None) in replayed.headers
    assert headers["dlq_replayed_from"] == f"{original_topic}.dlq:{meta.partition}:{meta.offset}".encode()


async def test_audit_prints_every_transition_of_a_commitment(topic_prefix, schema_for, monkeypatch, capsys):
    """`ntbctl audit` lists who moved the commitment from which state to which, in order."""
    from shared.contracts.roles import Role

    from .commitments.helpers import bpu_commitment, running

    async with running(topic_prefix, schema_for("com")) as svc:
        commitment_id = (await svc.open("52.04"))["52.04"]
        assert (await svc.submit("52.04", bpu_commitment())).status_code == 200
        returned = await svc.act(commitment_id, "return", Role.DISNAKERTRANS_REVIEWER,
                                 {"reasons": ["Lampirkan Perbup"]})
        assert returned.status_code == 200, returned.text
        monkeypatch.setenv("NTB_API_KEY", (await svc.auth(Role.OPERATOR))["Authorization"].split()[1])
        assert await ops.audit(commitment_id, client=svc.client) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.count("\t") == 5]
    assert [line.split("\t")[4] for line in lines] == ["- -> requested", "requested -> submitted",
                                                       "submitted -> returned"]
    assert lines[-1].endswith("Lampirkan Perbup")


async def test_lag_without_database_url_says_what_is_missing(monkeypatch, capsys):
    """`ntbctl lag` with no DATABASE_URL names it instead of a traceback, and still reports consumer lag."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NTB_ENV", "production")  # no development default to fall back on
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
    assert await ops.lag() == 2
    captured = capsys.readouterr()
    assert "no PostgreSQL address" in captured.err and "DATABASE_URL" in captured.err
    assert "Traceback" not in captured.err
