"""The Rakor burst (target: p99 < 250 ms from submission to the last of its e-mails accepted).

The real commitments and notifications services run as processes (bench/services.py), with
an SMTP sink (bench/sinks.py). Ten regions submit at once: eight over HTTP
(`POST /commitments/{region}/submit`, each its own keep-alive connection), two as
`commitment.submit` commands on Kafka. With the shipped routing each submission is e-mailed
to four people; a submission's latency runs from the moment it was sent to the acceptance of
the last of those e-mails, matched by correlation id (X-Correlation-ID / ce_correlationid)
and the delivery id every e-mail carries (X-Notification-Id).

Between repetitions a Disnakertrans reviewer returns every commitment (so that the next
burst is a resubmission) and the run waits until every e-mail so far was accepted: each
burst starts from a quiet system. The first burst is a warm-up and is not counted.

Where the time goes, per submission: until the notifications consumer's transaction that
wrote the deliveries began (`deliveries.created_at`: HTTP or Kafka in, commitments' outbox
relay, Kafka, the consumer's fetch) and from there to the last acceptance (the sender).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from shared.contracts import registry
from shared.contracts.commitments import SubmitCommitment
from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS, COMMITMENTS_INBOUND
from shared.platform.auth import ApiKeyStore
from shared.platform.envelope import CloudEvent
from shared.platform.kafka import SAFE_PRODUCER
from shared.platform.kafka_security import client_options
from shared.platform.settings import DEVELOPMENT_API_KEY_PEPPER

from .harness import _REGIONS, BOOTSTRAP, DSN, SOURCE
from .scenarios import percentile
from .services import Services
from .sinks import Sink, start_sink

HTTP_REGIONS, KAFKA_REGIONS = _REGIONS[:8], _REGIONS[8:]
EMAILS_PER_SUBMISSION = 4
SETTLE_TIMEOUT = 120.0


def body(region: str, rep: int) -> dict[str, Any]:
    workers = 1000 + rep
    unit = 16800
    return {"region_code": region, "fiscal_year": 2026, "budget_stage": "murni", "signatory_name": "Sekretaris Daerah",
            "lines": [{"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": workers, "months": 12,
                       "unit_contribution_rp": unit, "total_rp": workers * 12 * unit,
                       "funding_source": "apbd_kabupaten_kota"}],
            "total_workers": workers, "total_rp": workers * 12 * unit}


def submit_command(region: str, rep: int, run_id: str, correlation: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    payload = SubmitCommitment(**body(region, rep), submission_id=f"{run_id}-{rep}-{region.replace('.', '')}")
    event = CloudEvent.new(source=SOURCE, type=registry.spec_for(payload).type, data=payload.model_dump_json().encode(),
                           correlation_id=correlation)
    return region.encode(), event.data, event.to_headers()


class Burst:
    def __init__(self, services: Services, sink: Sink) -> None:
        self.services = services
        self.sink = sink
        self.commitments = services["commitments"]
        self.notifications = services["notifications"]

    async def setup(self) -> None:
        self.c_pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2,
                                                server_settings={"search_path": self.commitments.schema})
        self.n_pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2,
                                                server_settings={"search_path": self.notifications.schema})
        # The services run in development mode (bench/services.py), so they hash keys with its pepper.
        keys = ApiKeyStore(self.c_pool, SecretStr(DEVELOPMENT_API_KEY_PEPPER))
        self.organizer = (await keys.issue(name="bench organizer", role=Role.ORGANIZER))[0]
        self.reviewer = (await keys.issue(name="bench reviewer", role=Role.DISNAKERTRANS_REVIEWER))[0]
        self.region_keys = {r: (await keys.issue(name=f"bench {r}", role=Role.REGION_OPERATOR, region_code=r))[0]
                            for r in HTTP_REGIONS}
        # One connection per HTTP region, kept alive across bursts (a region's system would keep its own).
        self.clients = {r: httpx.AsyncClient(base_url=self.commitments.url, timeout=30,
                                             headers={"Authorization": f"Bearer {self.region_keys[r]}"})
                        for r in HTTP_REGIONS}
        self.staff = httpx.AsyncClient(base_url=self.commitments.url, timeout=30)
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **SAFE_PRODUCER, **client_options())
        await self.producer.start()
        self.inbound = self.services.prefix + COMMITMENTS_INBOUND
        # A tap on commitments' events: each record's timestamp is when the relay produced it.
        self.tap = AIOKafkaConsumer(self.services.prefix + COMMITMENTS_EVENTS, bootstrap_servers=BOOTSTRAP,
                                    group_id=None, auto_offset_reset="latest", **client_options())
        await self.tap.start()
        await self.tap.getmany(timeout_ms=1000)  # assigned, positioned at the end
        self.published: dict[str, float] = {}
        response = await self.staff.post("/commitments/requests", json={},
                                         headers={"Authorization": f"Bearer {self.organizer}"})
        response.raise_for_status()
        self.commitment_ids = {o["region_code"]: o["commitment_id"] for o in response.json()["opened"]}

    async def close(self) -> None:
        for client in [*self.clients.values(), self.staff]:
            await client.aclose()
        await self.producer.stop()
        await self.tap.stop()
        await self.c_pool.close()
        await self.n_pool.close()

    async def settle(self) -> None:
        """Every delivery written so far is no longer pending and its e-mail was accepted; no outbox backlog."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            rows = await self.n_pool.fetch("SELECT delivery_id::text AS d, status FROM deliveries WHERE channel = 'email'")
            accepted = self.sink.accepted()
            waiting = await self.c_pool.fetchval("SELECT count(*) FROM outbox")
            if not waiting and all(r["status"] != "pending" and (r["status"] == "failed" or r["d"] in accepted)
                                   for r in rows):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("the system did not settle")

    async def burst(self, rep: int) -> dict[str, Any]:
        run_id = self.services.run_id
        await asyncio.gather(*(c.get("/healthz") for c in self.clients.values()))  # connections open
        correlation = {r: str(uuid.uuid4()) for r in _REGIONS}
        commands = {r: submit_command(r, rep, run_id, correlation[r]) for r in KAFKA_REGIONS}
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}

        # Everything built beforehand, so that the ten leave within a few milliseconds.
        requests = {r: self.clients[r].build_request(
            "POST", f"/commitments/{r}/submit", json=body(r, rep),
            headers={"X-Correlation-ID": correlation[r], "Idempotency-Key": f"{run_id}-{rep}-{r}"}) for r in HTTP_REGIONS}

        async def over_http(region: str) -> None:
            sent[region] = time.time()
            response = await self.clients[region].send(requests[region])
            answered[region] = time.time()
            response.raise_for_status()

        async def over_kafka(region: str) -> None:
            key, value, headers = commands[region]
            sent[region] = time.time()
            await (await self.producer.send(self.inbound, value=value, key=key, headers=headers))

        await asyncio.gather(*(over_http(r) for r in HTTP_REGIONS), *(over_kafka(r) for r in KAFKA_REGIONS))
        spread_ms = (max(sent.values()) - min(sent.values())) * 1000
        by_correlation = {c: r for r, c in correlation.items()}
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            rows = await self.n_pool.fetch(
                "SELECT correlation_id, delivery_id::text AS d, extract(epoch FROM created_at)::float8 AS created "
                "FROM deliveries WHERE channel = 'email' AND correlation_id = ANY($1::text[]) "
                "AND source_event_type LIKE '%.submitted.v1'", list(by_correlation))
            accepted = self.sink.accepted()
            if len(rows) >= EMAILS_PER_SUBMISSION * len(_REGIONS) and all(r["d"] in accepted for r in rows):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"burst {rep}: {len(rows)} deliveries, "
                                   f"{sum(r['d'] in accepted for r in rows)} accepted")
            await asyncio.sleep(0.05)
        while not all(c in self.published for c in by_correlation):
            for records in (await self.tap.getmany(timeout_ms=200)).values():
                for record in records:
                    head = dict(record.headers)
                    if head.get("ce_type", b"").endswith(b".submitted.v1"):
                        self.published[head["ce_correlationid"].decode()] = record.timestamp / 1000
            if time.monotonic() > deadline:
                raise TimeoutError("the tap did not see every submitted event")
        last: dict[str, float] = {}
        written: dict[str, float] = {}
        for r in rows:
            region = by_correlation[r["correlation_id"]]
            last[region] = max(last.get(region, 0.0), accepted[r["d"]])
            written[region] = max(written.get(region, 0.0), r["created"])
        out = {"spread_ms": round(spread_ms, 2),
               "latency_ms": {r: round((last[r] - sent[r]) * 1000, 1) for r in _REGIONS},
               "until_deliveries_ms": {r: round((written[r] - sent[r]) * 1000, 1) for r in _REGIONS},
               "http_answered_ms": {r: round((answered[r] - sent[r]) * 1000, 1) for r in HTTP_REGIONS},
               "until_published_ms": {r: round((self.published[correlation[r]] - sent[r]) * 1000, 1)
                                      for r in _REGIONS}}
        await self.return_all(rep)
        return out

    async def return_all(self, rep: int) -> None:
        """Disnakertrans returns every submission, so the next burst is a resubmission."""
        for commitment_id in self.commitment_ids.values():
            response = await self.staff.post(f"/commitments/{commitment_id}/return",
                                              json={"reasons": [f"Perbaiki data pekerja (putaran {rep + 1})."]},
                                              headers={"Authorization": f"Bearer {self.reviewer}"})
            response.raise_for_status()


async def run_burst(repetitions: int, sink_kind: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    sink = start_sink(sink_kind)
    services = None
    burst = None
    try:
        services = await Services.start(("commitments", "notifications"), smtp_port=sink.port, env=env)
        burst = Burst(services, sink)
        await burst.setup()
        bursts = []
        for rep in range(repetitions + 1):  # the first is a warm-up
            await burst.settle()
            result = await burst.burst(rep)
            if rep:
                bursts.append(result)
    finally:
        if burst is not None:
            await burst.close()
        if services is not None:
            services.stop()
            await services.drop()
        sink.stop()
    latencies = sorted(v for b in bursts for v in b["latency_ms"].values())
    until = sorted(v for b in bursts for v in b["until_deliveries_ms"].values())
    published = sorted(v for b in bursts for v in b["until_published_ms"].values())
    answered = sorted(v for b in bursts for v in b["http_answered_ms"].values())
    per_burst_last = sorted(max(b["latency_ms"].values()) for b in bursts)
    return {
        "sink": sink.kind, "repetitions": len(bursts), "submissions": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
        "p50_ms_http_answered": round(percentile(answered, 50), 1),
        "p99_ms_http_answered": round(percentile(answered, 99), 1),
        "p50_ms_until_published": round(percentile(published, 50), 1),
        "p99_ms_until_published": round(percentile(published, 99), 1),
        "p50_ms_until_deliveries_written": round(percentile(until, 50), 1),
        "p99_ms_until_deliveries_written": round(percentile(until, 99), 1),
        "share_before_deliveries_p50": round(percentile(until, 50) / max(percentile(latencies, 50), 1e-9), 2),
        "burst_last_email_p50_ms": round(percentile(per_burst_last, 50), 1),
        "max_submit_spread_ms": max(b["spread_ms"] for b in bursts),
        "http_p50_ms": round(percentile(sorted(v for b in bursts for r, v in b["latency_ms"].items()
                                               if r in HTTP_REGIONS), 50), 1),
        "kafka_p50_ms": round(percentile(sorted(v for b in bursts for r, v in b["latency_ms"].items()
                                                if r in KAFKA_REGIONS), 50), 1),
        "target": "p99 < 250 ms", "meets_target": percentile(latencies, 99) < 250,
        "verified": len(latencies) == len(bursts) * len(_REGIONS),
    }


if __name__ == "__main__":  # python -m bench.burst [repetitions] [c|aiosmtpd]
    import json
    import sys
    print(json.dumps(asyncio.run(run_burst(int(sys.argv[1]) if len(sys.argv) > 1 else 10,
                                           sys.argv[2] if len(sys.argv) > 2 else "aiosmtpd")), indent=2))
