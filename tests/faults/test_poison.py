"""Poison records mixed into valid traffic: each one dead-lettered with its reason, valid traffic unaffected."""

from __future__ import annotations

import json
import os
import time

import pytest

from shared.contracts.commitments import SubmitCommitment
from shared.contracts.topics import COMMITMENTS_INBOUND, REALIZATION_INBOUND, dlq
from shared.platform.envelope import CloudEvent
from tests.integration.commitments.helpers import bpu_commitment

from .conftest import produce, read_all, report, wait_for
from .streams import realization_applied, realization_reports, record_of, unique_tag

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
VALID = 200
REALIZATION_TYPE = "ntb.bpjs.realization.reported.v1"


def poison_records(tag: str) -> dict[str, tuple[str, tuple[bytes, bytes, list], str]]:
    """name -> (logical topic, record, expected start of the DLQ reason)."""
    good_headers = CloudEvent.new(source="/bpjs/test", type=REALIZATION_TYPE, data=b"{}").to_headers()
    unknown = CloudEvent.new(source="/bpjs/test", type="ntb.bpjs.nobody.knows.v1", data=b"{}")
    wrong = CloudEvent.new(source="/bpjs/test", type=REALIZATION_TYPE,
                           data=json.dumps({"report_id": f"{tag}-x", "region_code": "99.99"}).encode())
    _, valid_looking = record_of(SubmitCommitment(**bpu_commitment("52.01"), submission_id=f"{tag}-noreq"))
    # Large but under the broker's 1 MiB limit: the service itself must refuse them.
    huge_text = bpu_commitment("52.02", signatory_name="S" * 900_000, submission_id=f"{tag}-big")
    huge_lines = bpu_commitment("52.03", submission_id=f"{tag}-lines")
    huge_lines["lines"] = huge_lines["lines"] * 3000
    submit_type = "ntb.commitments.commitment.submit.v1"

    def raw(body: dict) -> tuple[bytes, bytes, list]:
        data = json.dumps(body).encode()
        assert 500_000 < len(data) < 1_000_000
        return b"52.02", data, CloudEvent.new(source="/sipd/test", type=submit_type, data=data).to_headers()

    missing = [(k, v) for k, v in good_headers if k not in ("ce_type", "ce_id")]
    return {
        "random bytes": (REALIZATION_INBOUND, (b"52.01", os.urandom(512), []), "undecodable"),
        "wrong schema": (REALIZATION_INBOUND, (b"52.01", wrong.data, wrong.to_headers()),
                         f"invalid {REALIZATION_TYPE} payload"),
        "unknown type": (REALIZATION_INBOUND, (b"52.01", unknown.data, unknown.to_headers()),
                         "type 'ntb.bpjs.nobody.knows.v1' is not accepted on ntb.bpjs.realization"),
        "missing headers": (REALIZATION_INBOUND, (b"52.01", b'{"report_id": "x"}', missing), "undecodable"),
        "not json": (REALIZATION_INBOUND, (b"52.01", b"{not json", good_headers), "undecodable"),
        # Refused by the bounded parser before any model sees them (docs/integration.md, "Limits").
        "900 KB field": (COMMITMENTS_INBOUND, raw(huge_text), "undecodable: data is "),
        "3,000 lines": (COMMITMENTS_INBOUND, raw(huge_lines), "undecodable: data is "),
        "no open request": (COMMITMENTS_INBOUND, valid_looking, "rejected: "),
    }


async def test_poison_records_are_dead_lettered_and_valid_traffic_flows(topic_prefix, schema_for, db, processes):
    """Every poison record lands in <topic>.dlq with its reason; records in = processed + dead-lettered."""
    schema, tag = schema_for("com"), unique_tag()
    svc = processes("commitments", topic_prefix, schema)
    await svc.start()
    poison = poison_records(tag)
    valid = realization_reports(VALID, tag)
    # Poison first, then interleaved with the valid reports, on the partitions the valid ones use.
    mixed = list(valid)
    for i, (topic, record, _) in enumerate(poison.values()):
        if topic == REALIZATION_INBOUND:
            mixed.insert(i * 25, record)
    started = time.monotonic()
    await produce(topic_prefix + REALIZATION_INBOUND, mixed)
    await produce(topic_prefix + COMMITMENTS_INBOUND,
                  [record for topic, record, _ in poison.values() if topic == COMMITMENTS_INBOUND])
    records_in = len(mixed) + sum(1 for topic, _, _ in poison.values() if topic == COMMITMENTS_INBOUND)

    async def settled():
        counts = await svc.handled()
        return counts if sum(counts.values()) >= records_in else None

    counts = await wait_for(settled, timeout=45)
    elapsed = time.monotonic() - started
    dead = []
    for logical in (REALIZATION_INBOUND, COMMITMENTS_INBOUND):
        expected = sum(1 for topic, _, _ in poison.values() if topic == logical)
        dead += await read_all(dlq(topic_prefix + logical), until=lambda rs, n=expected: len(rs) >= n, settle=0.5)
    reasons = {(dict(r.headers)["dlq_original_topic"].decode(), r.value): dict(r.headers)["dlq_reason"].decode()
               for r in dead}
    for name, (logical, (_, value, _), prefix) in poison.items():
        reason = reasons.get((topic_prefix + logical, value))
        assert reason is not None, f"{name}: not in the DLQ"
        assert reason.startswith(prefix), f"{name}: {reason!r}"
    assert "the limit is 262,144" in reasons[(topic_prefix + COMMITMENTS_INBOUND, poison["900 KB field"][1][1])]
    assert "the limit is 262,144" in reasons[(topic_prefix + COMMITMENTS_INBOUND, poison["3,000 lines"][1][1])]

    applied = await realization_applied(db, schema, tag)
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".commitments') == 0  # nothing written for refusals
    row = report("poison mix", sent=VALID, applied=applied, lost=VALID - applied,
                 duplicates=int(counts.get("applied", 0)) - applied, recovery_s=None, records_in=records_in,
                 processed=int(counts.get("applied", 0)), dead_lettered=int(counts.get("dead_lettered", 0)),
                 in_dlq=len(dead), handled_s=round(elapsed, 2))
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert counts == {"applied": VALID, "dead_lettered": len(poison)}
    assert records_in == VALID + len(poison) == row["processed"] + row["dead_lettered"]
    assert len(dead) == len(poison)
    assert svc.proc is not None and svc.proc.poll() is None, "the service crashed"
