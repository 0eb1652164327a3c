"""The Kafka broker killed and restarted while regions write over HTTP: every accepted write reaches Kafka."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS
from tests.integration.commitments.helpers import bpu_commitment

from .conftest import ce_ids, issue_keys, kafka, needs_managed_stack, read_all, report, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas"), needs_managed_stack]


@needs_managed_stack
async def test_broker_killed_while_regions_submit_loses_no_accepted_write(topic_prefix, schema_for, db, processes):
    """kill -9 of the broker mid-load: writes keep being accepted, and each reaches Kafka once it is back."""
    schema = schema_for("com")
    svc = processes("commitments", topic_prefix, schema)
    await svc.start()
    codes = sorted(regions())
    keys = await issue_keys(schema, [(Role.ORGANIZER, None), *((Role.REGION_OPERATOR, c) for c in codes)])
    accepted: set[tuple[str, int]] = set()
    accepted_at: list[float] = []
    refused: list[str] = []
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=svc.url, timeout=10) as client:
        r = await client.post("/commitments/requests", json={"regions": codes},
                              headers={"Authorization": f"Bearer {keys[Role.ORGANIZER, None]}"})
        assert r.status_code == 201, r.text

        async def region_desk(code: str) -> None:
            """A regency's operator saving drafts again and again (each save is one drafted event)."""
            auth = {"Authorization": f"Bearer {keys[Role.REGION_OPERATOR, code]}"}
            workers = 1000
            while not stop.is_set():
                workers += 1
                resp = await client.put(f"/commitments/{code}/draft", json=bpu_commitment(code, workers=workers),
                                        headers=auth)
                if resp.status_code == 200:
                    accepted.add((code, workers))
                    accepted_at.append(time.monotonic())
                else:
                    refused.append(f"{resp.status_code} {resp.text[:200]}")
                await asyncio.sleep(0.05)

        desks = [asyncio.create_task(region_desk(c)) for c in codes]
        try:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(kafka, "kill")
            killed = time.monotonic()
            await asyncio.sleep(2)
        finally:
            await asyncio.to_thread(kafka, "start")
        back = time.monotonic()
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*desks)

    during = sum(1 for t in accepted_at if killed <= t <= back)
    unpublished = f'SELECT count(*) = 0 FROM "{schema}".outbox'
    await wait_for(lambda: db.fetchval(unpublished), timeout=45)
    recovery = time.monotonic() - back
    records = await read_all(topic_prefix + COMMITMENTS_EVENTS,
                             until=lambda rs: len(set(ce_ids(rs, "drafted.v1"))) >= len(accepted), timeout=20)
    drafted: dict[str, tuple[str, int]] = {}
    for r in records:
        headers = dict(r.headers)
        if headers["ce_type"].decode().endswith("drafted.v1"):
            data = json.loads(r.value)
            drafted[headers["ce_id"].decode()] = (data["region_code"], data["total_workers"])
    effects = list(drafted.values())
    copies = len(ce_ids(records, "drafted.v1")) - len(drafted)
    row = report("Kafka killed during HTTP writes", sent=len(accepted), applied=len(set(effects) & accepted),
                 lost=len(accepted - set(effects)), duplicates=len(effects) - len(set(effects)),
                 recovery_s=recovery, accepted_while_down=during, broker_down_s=round(back - killed, 1),
                 refused=len(refused), kafka_copies=copies, service_restarts=svc.starts - 1)
    assert not refused, refused[:3]  # the broker is not on the write path: nothing was refused
    assert during > 0, "no write was accepted while the broker was down"
    assert row["lost"] == 0 and row["duplicates"] == 0
    assert set(effects) == accepted
    assert svc.proc is not None and svc.proc.poll() is None and svc.starts == 1  # recovered without a restart
