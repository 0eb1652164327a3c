"""A regency's inbound topic carries only that regency's submissions (shared/platform/sender_region.py)."""

from __future__ import annotations

import pytest

from shared.contracts.commitments import SubmitCommitment
from shared.contracts.topics import COMMITMENTS_EVENTS, dlq, regional_inbound

from ..conftest import eventually, read_topic
from .helpers import bpu_commitment, publish, running

pytestmark = pytest.mark.integration


def _submission(submission_id: str, region: str) -> SubmitCommitment:
    return SubmitCommitment.model_validate(bpu_commitment(region=region) | {"submission_id": submission_id})


async def test_a_submission_for_another_region_on_a_regencys_topic_is_dead_lettered(
    topic_prefix, schema_for, db, cleanup_schemas
):
    schema = schema_for("com")
    own_topic = topic_prefix + regional_inbound("52.04")
    async with running(topic_prefix, schema) as svc:
        await svc.open("52.04", "52.05")
        # Sumbawa (52.04) submits for itself and, on its own topic, for Dompu (52.05).
        await publish(own_topic, [_submission("own-1", "52.04"), _submission("foreign-1", "52.05")])
        row = await eventually(lambda: db.fetchrow(
            f'SELECT * FROM "{schema}".commitments WHERE region_code = $1 AND status = $2', "52.04", "submitted"))
        assert row is not None
        (dead,) = await read_topic(dlq(own_topic), expect=1, timeout=20)
        reason = dict(dead.headers)["dlq_reason"].decode()
        assert "region_code 52.05 does not match the sender's region 52.04" in reason
        assert await db.fetchval(f'SELECT status FROM "{schema}".commitments WHERE region_code = $1',
                                 "52.05") == "requested"
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".submissions') == 1
        # The consumer moved on: a later submission on Dompu's own topic is applied.
        await publish(topic_prefix + regional_inbound("52.05"), [_submission("own-2", "52.05")])
        await eventually(lambda: db.fetchval(
            f'SELECT status = $2 FROM "{schema}".commitments WHERE region_code = $1', "52.05", "submitted"))
        events = await read_topic(topic_prefix + COMMITMENTS_EVENTS, expect=4, timeout=20)
        assert len(events) >= 2
