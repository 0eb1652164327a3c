"""kill -9 of invitations during HTTP writes: every accepted write's event reaches Kafka, once per write."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from shared.contracts.roles import Role
from shared.contracts.topics import INVITATIONS_EVENTS
from tests.integration.test_first_flow import meeting_body

from .conftest import ce_ids, issue_keys, read_all, report, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
N = 200
CLIENTS = 5


async def test_invitations_killed_mid_writes_publishes_every_accepted_meeting_once(
    topic_prefix, schema_for, db, processes
):
    """Organizers schedule meetings (retrying with their Idempotency-Key) across a SIGKILL: each meeting once."""
    schema = schema_for("inv")
    svc = processes("invitations", topic_prefix, schema)
    await svc.start()
    token = (await issue_keys(schema, [(Role.ORGANIZER, None)]))[Role.ORGANIZER, None]
    accepted: dict[str, str] = {}  # idempotency key -> meeting id
    errors = 0
    queue = [uuid.uuid4().hex for _ in range(N)]

    async def organizer_desk(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            key = queue.pop()
            while True:  # a client that got no answer retries with the same key
                try:
                    resp = await client.post("/meetings", json=meeting_body(),
                                             headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
                except httpx.TransportError:
                    errors += 1
                    await asyncio.sleep(0.2)
                    continue
                if resp.status_code in (200, 201):
                    accepted[key] = resp.json()["meeting_id"]
                    break
                raise AssertionError(f"{resp.status_code}: {resp.text[:300]}")

    async with httpx.AsyncClient(base_url=svc.url, timeout=5) as client:
        desks = [asyncio.create_task(organizer_desk(client)) for _ in range(CLIENTS)]
        await wait_for(lambda: _value(len(accepted) >= N // 4), interval=0.02)
        svc.kill()
        killed = time.monotonic()
        at_kill = len(accepted)
        assert at_kill < N, "every write was done before the kill: no fault was injected"
        await svc.start()
        await asyncio.wait_for(asyncio.gather(*desks), timeout=45)

    unpublished = f'SELECT count(*) = 0 FROM "{schema}".outbox'
    await wait_for(lambda: db.fetchval(unpublished), timeout=30)
    recovery = time.monotonic() - killed
    records = await read_all(topic_prefix + INVITATIONS_EVENTS,
                             until=lambda rs: len(set(ce_ids(rs, "meeting.scheduled.v1"))) >= N)
    per_meeting: dict[str, set[str]] = {}
    for r in records:
        headers = dict(r.headers)
        if headers["ce_type"].decode().endswith("meeting.scheduled.v1"):
            per_meeting.setdefault(json.loads(r.value)["meeting_id"], set()).add(headers["ce_id"].decode())
    wanted = set(accepted.values())
    copies = len(ce_ids(records, "meeting.scheduled.v1")) - sum(len(ids) for ids in per_meeting.values())
    meetings_in_db = await db.fetchval(f'SELECT count(*) FROM "{schema}".meetings')
    row = report("kill -9 invitations", sent=N, applied=len(wanted & set(per_meeting)),
                 lost=len(wanted - set(per_meeting)), duplicates=sum(len(ids) - 1 for ids in per_meeting.values()),
                 recovery_s=recovery, accepted_before_kill=at_kill, client_retries=errors, kafka_copies=copies,
                 meetings_in_db=meetings_in_db)
    assert len(accepted) == N and len(wanted) == N  # a retried key never made a second meeting
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert set(per_meeting) == wanted and meetings_in_db == N


async def _value(value):
    return value
