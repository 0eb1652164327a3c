"""Shared pieces of the commitments integration tests (real Kafka and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from services.commitments.bootstrap import build
from services.commitments.settings import CommitmentsSettings
from shared.contracts import registry
from shared.contracts.registry import EventPayload
from shared.contracts.roles import Role
from shared.platform.envelope import CloudEvent
from shared.platform.kafka_security import client_options

from ..conftest import BOOTSTRAP, canonical_key, http_client, issue_key, read_topic, service_settings


class FakeClock:
    """A clock tests move forward; the timer wheel and the HTTP API read it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Service:
    def __init__(self, runtime: Any, app: Any, client: httpx.AsyncClient, clock: FakeClock) -> None:
        self.runtime, self.app, self.client, self.clock = runtime, app, client, clock
        self._tokens: dict[tuple[Role, str | None], str] = {}

    async def auth(self, role: Role, region: str | None = None) -> dict[str, str]:
        if (role, region) not in self._tokens:
            self._tokens[role, region] = await issue_key(self.runtime, role, region)
        return {"Authorization": f"Bearer {self._tokens[role, region]}"}

    async def open(self, *regions: str, deadline: datetime | None = None) -> dict[str, str]:
        """Open requests; returns region -> commitment id."""
        body: dict[str, Any] = {"regions": list(regions)}
        if deadline is not None:
            body["deadline"] = deadline.isoformat()
        r = await self.client.post("/commitments/requests", json=body, headers=await self.auth(Role.ORGANIZER))
        assert r.status_code == 201, r.text
        return {item["region_code"]: item["commitment_id"] for item in r.json()["opened"]}

    async def submit(self, region: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.client.post(f"/commitments/{region}/submit", json=body,
                                      headers=await self.auth(Role.REGION_OPERATOR, region) | headers)

    async def act(self, commitment_id: str, action: str, role: Role, body: dict | None = None,
                  region: str | None = None, **headers: str) -> httpx.Response:
        return await self.client.post(f"/commitments/{commitment_id}/{action}", json=body,
                                      headers=await self.auth(role, region) | headers)


@asynccontextmanager
async def running(topic_prefix: str, schema: str, **overrides: Any) -> AsyncIterator[Service]:
    clock = FakeClock()
    settings = service_settings(CommitmentsSettings, topic_prefix, schema, timer_poll_seconds=0.1, **overrides)
    runtime, app = build(settings, clock=clock)
    await runtime.start()
    try:
        async with http_client(app, runtime) as client:
            yield Service(runtime, app, client, clock)
    finally:
        await runtime.stop()


def bpu_commitment(region: str = "52.04", workers: int = 15_000, months: int = 12, **overrides: Any) -> dict:
    total = workers * months * 16_800
    return {
        "region_code": region, "fiscal_year": 2026, "budget_stage": "murni",
        "signatory_name": "Sekretaris Daerah", "legal_basis": "Perbup No. 7 Tahun 2025",
        "lines": [{"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": workers,
                   "months": months, "unit_contribution_rp": 16_800, "total_rp": total,
                   "funding_source": "apbd_kabupaten_kota", "implementing_office": "Disnakertrans"}],
        "total_workers": workers, "total_rp": total,
    } | overrides


async def publish(topic: str, payloads: list[EventPayload | CloudEvent]) -> list[CloudEvent]:
    """Publish events as another system would (binary CloudEvents, region as key)."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", **client_options())
    await producer.start()
    sent = []
    try:
        for item in payloads:
            if isinstance(item, CloudEvent):
                event = item
                key = canonical_key(item.data, item.to_headers(), fallback=str(
                    json.loads(item.data).get("region_code", "k")).encode()).decode()
            else:
                spec = registry.spec_for(item)
                event = CloudEvent.new(source="/sipd/test", type=spec.type, data=item.model_dump_json().encode())
                key = spec.key_of(item)
            await producer.send_and_wait(topic, value=event.data, key=key.encode(), headers=event.to_headers())
            sent.append(event)
    finally:
        await producer.stop()
    return sent


async def event_types(topic: str, expect: int, key: str | None = None) -> list[str]:
    records = await read_topic(topic, expect=expect, timeout=20)
    return [dict(r.headers)["ce_type"].decode().split(".")[-2] for r in sorted(records, key=lambda r: r.timestamp)
            if key is None or r.key == key.encode()]
