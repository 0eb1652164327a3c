"""Publishing as an outside system would: librdkafka (confluent-kafka), raw bytes, any headers."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from confluent_kafka import Producer

from shared.platform.envelope import CloudEvent
from shared.platform.kafka_security import from_env

from .conftest import BOOTSTRAP

RawHeaders = list[tuple[str, bytes | None]]
RawRecord = tuple[bytes | None, bytes | None, RawHeaders]
SUBMIT = "ntb.commitments.commitment.submit.v1"
REPORT = "ntb.bpjs.realization.reported.v1"


def produce(topic: str, records: list[RawRecord], *, partition: int | None = None) -> None:
    """Publish in order with librdkafka and wait for every ack (raises on any delivery error)."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "acks": "all",
                         "message.max.bytes": 1_048_576 + 4096, "linger.ms": 5, **from_env().librdkafka_options()})
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for key, value, headers in records:
        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and not errors, f"not delivered: {left} left, errors {errors}"


async def aproduce(topic: str, records: list[RawRecord], **kwargs: Any) -> None:
    await asyncio.to_thread(produce, topic, records, **kwargs)


def report_body(report_id: str, region: str = "52.01", workers: int = 100, **more: Any) -> dict[str, Any]:
    return {"report_id": report_id, "region_code": region, "fiscal_year": 2026, "segment": "pekerja_rentan_bpu",
            "period": "2026-03-01", "workers_enrolled": workers, "contributions_paid_rp": workers * 16_800} | more


def event(type_: str, body: dict[str, Any] | bytes, *, source: str = "/bpjs/test",
          event_id: str | None = None) -> tuple[bytes, RawHeaders]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    cloud = CloudEvent.new(source=source, type=type_, data=data, id=event_id or str(uuid.uuid4()),
                           time=datetime.now(UTC))
    return data, list(cloud.to_headers())


def report_record(report_id: str, region: str = "52.01", **more: Any) -> RawRecord:
    value, headers = event(REPORT, report_body(report_id, region, **more))
    return region.encode(), value, headers


async def records_total(runtime: Any) -> dict[tuple[str, str], float]:
    """ntb_consumer_records_total by (logical topic, outcome), read from the service's own /metrics."""
    app_metrics = runtime.metrics.exposition().decode()
    found: dict[tuple[str, str], float] = {}
    for line in app_metrics.splitlines():
        m = re.match(r'ntb_consumer_records_total\{([^}]*)\} (\S+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            topic, outcome, value = labels["topic"], labels["outcome"], m.group(2)
            topic = topic.split(".", 1)[1] if topic.startswith("t") else topic  # the test's topic prefix
            found[(topic, outcome)] = found.get((topic, outcome), 0) + float(value)
    return found


def consumed(totals: dict[tuple[str, str], float], topic: str) -> float:
    return sum(v for (t, _), v in totals.items() if t == topic)


async def readyz(runtime: Any) -> tuple[int, dict[str, Any]]:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(runtime.health_router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()
