"""PIPELINE (issue 19, target 3): an external `commitment.submit` through the real commitments and
notifications services to the SMTP sink, beside a raw two-hop baseline, in the same run.

Why cycles. Commitments takes the fiscal year from its settings (COMMITMENTS_FISCAL_YEAR) and holds one
commitment per region and fiscal year, and a submitted commitment must be returned by a reviewer
before its region can submit again. So one process holds at most ten open submissions, and a
stream of N submits would be ten submissions and N - 10 refusals (dead letters), which is not the
pipeline. The bench therefore runs ten **chains**, one per region, each doing `cycles` times what
the workflow allows:

  1. the region's system writes a `commitment.submit` record to the regional inbound topic (binary
     CloudEvents, keyed by region code, its own correlation id: what an outside system writes);
  2. the bench waits until commitments has published the `commitment.submitted` event (a tap on
     commitments' events topic, matched by correlation id);
  3. a Disnakertrans reviewer returns it over HTTP (`POST /commitments/{id}/return`), so that the
     region may resubmit; the answer comes after the return is committed.

Each submission is e-mailed to four people (the shipped routing); each return to the region's
officials (the shipped routing too). Measured: a submission's latency from its record being sent
to the last of its four submitted notices accepted by the sink; the return's HTTP answer and its
e-mails are counted apart (`return_*`). Throughput is cycles per second over the whole run (first
submit to the last e-mail of any kind accepted), so the returns' e-mails are part of the work done.
The chains wait only for commitments, never for the e-mails, so at saturation the notices queue up
in notifications (`emails_after_last_submit` says how much of the work was still queued when the
last submit went out: the run was saturated when that share is large).

Several commitments processes with a schema and fiscal year each were the alternative: 1,000
submissions would need 100 of them (and 100 consumer groups on the same topics) on two cores,
which measures the machine's scheduler, not the pipeline. The cycle is what one deployment does.

The raw baseline does the same cycles with two hand-written hops, each its own process as the
services are (bench/rawhops.py):
- hop 1: aiokafka `getmany` of the commands, one asyncpg statement per batch (the regions' state,
  upserted with `unnest`), the follow-up `commitment.submitted` / `commitment.returned` events built
  by hand and produced, offsets committed;
- hop 2: aiokafka `getmany`, the service's routing, templates and MIME bytes (`bench/rawmail.py`),
  aiosmtplib over 4 reused connections into the same sink, a DeliverySent-like record per e-mail to
  Kafka, one PostgreSQL write per batch, offsets committed.
Its return is a command record on hop 1's topic (it has no HTTP edge), acknowledged by the broker.

Half load: both variants at the same offered rate, half the service's median saturation rate
(cycles/s), each chain pacing its submits; p50/p99 of the submit -> last submitted notice latency.
CPU per cycle from /proc (the two service or hop processes, the sink, this stack's PostgreSQL), and
each process's RSS (at the start of the run, at its end, the peak) for growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS, COMMITMENTS_INBOUND
from shared.platform.auth import ApiKeyStore
from shared.platform.kafka import SAFE_PRODUCER, ensure_topics
from shared.platform.kafka_security import client_options
from shared.platform.settings import DEVELOPMENT_API_KEY_PEPPER

from .b4 import PostgresCpu, cpu_seconds
from .burst import submit_command
from .harness import _REGIONS, BOOTSTRAP, DSN, PARTITIONS, drop_schema_and_topics, new_space
from .rawhops import RAW_RETURN, RAW_SENT, RAW_STATE, RETURNED, SUBMITTED, headers_for, topics_of
from .scenarios import percentile
from .services import Services
from .sinks import Sink, start_sink

EMAILS_PER_SUBMISSION = 4
STEP_TIMEOUT = 120.0  # one chain step (a submit seen published, a return answered)


def _status_kb(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return round(_status_kb(pid, "VmRSS") / 1024, 1)


def peak_rss_mb(pid: int) -> float:
    return round(_status_kb(pid, "VmHWM") / 1024, 1)


@dataclass
class Cycle:
    region: str
    correlation: str
    submitted_at: float
    published_at: float = 0.0
    seen_at: float = 0.0
    return_correlation: str = ""
    returned_at: float = 0.0
    return_answered_at: float = 0.0


@dataclass
class Tap:
    """A consumer on an events topic that resolves a future per correlation id once `event_type` appears."""

    topic: str
    event_type: str
    waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    async def start(self) -> None:
        # A short fetch hold: the chains wait for this tap, so its own delay must not lengthen a cycle
        # (aiokafka leaves a partition it just fetched out of the fetch in flight; see docs/performance.md).
        self._consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=BOOTSTRAP, group_id=None,
                                          auto_offset_reset="latest", fetch_max_wait_ms=20, **client_options())
        await self._consumer.start()
        await self._consumer.getmany(timeout_ms=1000)  # assigned, positioned at the end
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        wanted = self.event_type.encode()
        while True:
            for records in (await self._consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    head = dict(record.headers)
                    if head.get("ce_type") != wanted or "ce_correlationid" not in head:
                        continue
                    correlation = head["ce_correlationid"].decode()
                    future = self.waiting.pop(correlation, None)
                    if future is None:
                        self.seen[correlation] = record.timestamp / 1000  # seen before anyone waited
                    elif not future.done():
                        future.set_result(record.timestamp / 1000)

    async def wait(self, correlation: str) -> float:
        if correlation in self.seen:
            return self.seen.pop(correlation)
        future = self.waiting.setdefault(correlation, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(future, STEP_TIMEOUT)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


class Variant:
    """What the chains drive: `submit`, `published` (the submitted event seen), `give_back`; the e-mails."""

    name: str
    pids: dict[str, int]

    async def prepare(self) -> None: ...
    async def submit(self, region: str, seq: int, correlation: str) -> None: ...
    async def published(self, correlation: str) -> float: ...
    async def give_back(self, region: str, seq: int, correlation: str) -> None: ...
    async def emails_done(self, since: float) -> tuple[int, int]:
        """(e-mails written since `since`, of them sent) - the cheap completion poll."""
        raise NotImplementedError
    async def emails(self, since: float) -> list[tuple[str, str, str, float]]:
        """(correlation id, delivery id, event type, when written) of every e-mail written since `since`."""
        raise NotImplementedError
    async def outbox_empty(self) -> bool:
        """Nothing waits to be published (the service's commitments outbox; the raw hops have none)."""
        return True

    async def close(self) -> None: ...


class ServicePipeline(Variant):
    """The real commitments and notifications services, as processes (bench/services.py)."""

    name = "service"

    def __init__(self, sink: Sink, env: dict[str, str] | None = None) -> None:
        self.sink = sink
        self.env = env

    async def start(self) -> None:
        self.services = await Services.start(("commitments", "notifications"), smtp_port=self.sink.port, env=self.env)
        commitments, notifications = self.services["commitments"], self.services["notifications"]
        self.pids = {"commitments": commitments.process.pid, "notifications": notifications.process.pid}
        self.run_id = self.services.run_id
        self.c_pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2,
                                                server_settings={"search_path": commitments.schema})
        self.n_pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2,
                                                server_settings={"search_path": notifications.schema})
        keys = ApiKeyStore(self.c_pool, SecretStr(DEVELOPMENT_API_KEY_PEPPER))  # the services' development pepper
        organizer = (await keys.issue(name="bench organizer", role=Role.ORGANIZER))[0]
        reviewer = (await keys.issue(name="bench reviewer", role=Role.DISNAKERTRANS_REVIEWER))[0]
        # One reviewer connection per chain, kept alive (each reviewer's browser would keep its own).
        self.reviewers = {r: httpx.AsyncClient(base_url=commitments.url, timeout=STEP_TIMEOUT,
                                               headers={"Authorization": f"Bearer {reviewer}"}) for r in _REGIONS}
        async with httpx.AsyncClient(base_url=commitments.url, timeout=60) as http:
            response = await http.post("/commitments/requests", json={},
                                       headers={"Authorization": f"Bearer {organizer}"})
            response.raise_for_status()
        self.commitment_ids = {o["region_code"]: o["commitment_id"] for o in response.json()["opened"]}
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **SAFE_PRODUCER,
                                         **client_options())
        await self.producer.start()
        self.inbound = self.services.prefix + COMMITMENTS_INBOUND
        self.tap = Tap(self.services.prefix + COMMITMENTS_EVENTS, SUBMITTED)
        await self.tap.start()

    async def submit(self, region: str, seq: int, correlation: str) -> None:
        key, value, headers = submit_command(region, seq, self.run_id, correlation)
        await (await self.producer.send(self.inbound, value=value, key=key, headers=headers))

    async def published(self, correlation: str) -> float:
        return await self.tap.wait(correlation)

    async def prepare(self) -> None:
        # The reviewers' connections open and fresh: uvicorn closes one idle for 5 s (between runs).
        await asyncio.gather(*(c.get("/healthz") for c in self.reviewers.values()))

    async def give_back(self, region: str, seq: int, correlation: str) -> None:
        path = f"/commitments/{self.commitment_ids[region]}/return"
        request = {"json": {"reasons": [f"Perbaiki data pekerja (putaran {seq})."]},
                   "headers": {"X-Correlation-ID": correlation}}
        try:
            response = await self.reviewers[region].post(path, **request)
        except httpx.TransportError:
            # A keep-alive connection the server closed just as it was reused: once more on a new one.
            # 409 then means the first one did arrive (the commitment is already returned).
            response = await self.reviewers[region].post(path, **request)
            if response.status_code == 409:
                return
        response.raise_for_status()

    async def emails_done(self, since: float) -> tuple[int, int]:
        row = await self.n_pool.fetchrow(
            "SELECT count(*) AS written, count(*) FILTER (WHERE status = 'sent') AS sent FROM deliveries "
            "WHERE channel = 'email' AND created_at >= to_timestamp($1)", since)
        return row["written"], row["sent"]

    async def emails(self, since: float) -> list[tuple[str, str, str, float]]:
        rows = await self.n_pool.fetch(
            "SELECT correlation_id, delivery_id::text AS d, source_event_type AS t, "
            "extract(epoch FROM created_at)::float8 AS w FROM deliveries "
            "WHERE channel = 'email' AND created_at >= to_timestamp($1)", since)
        return [(r["correlation_id"], r["d"], r["t"], r["w"]) for r in rows]

    async def outbox_empty(self) -> bool:
        return not await self.c_pool.fetchval("SELECT count(*) FROM outbox")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.tap.stop()
        for client in self.reviewers.values():
            await client.aclose()
        await self.producer.stop()
        await self.c_pool.close()
        await self.n_pool.close()
        self.services.stop()
        await self.services.drop()


class RawPipeline(Variant):
    name = "raw"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def start(self) -> None:
        self.space = new_space("pipe")
        self.topics = topics_of(self.space.prefix)
        await ensure_topics(BOOTSTRAP, list(self.topics.values()), partitions=PARTITIONS, replication=1)
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(f'CREATE SCHEMA "{self.space.schema}"')
            await conn.execute(f'SET search_path = "{self.space.schema}"')
            await conn.execute(RAW_STATE)
            await conn.execute(RAW_SENT)
        finally:
            await conn.close()
        self.pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2,
                                              server_settings={"search_path": self.space.schema})
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "PYTHONUNBUFFERED": "1"}
        for hop, extra in (("raw-commitments", []), ("raw-notifications", [str(self.sink.port)])):
            self.processes[hop] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.rawhops", hop, self.space.prefix, self.space.schema, *extra,
                stdout=asyncio.subprocess.PIPE, env=env)
        for hop, process in self.processes.items():
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"{hop} did not start")
        self.pids = {hop: p.pid for hop, p in self.processes.items()}
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, **SAFE_PRODUCER,
                                         **client_options())
        await self.producer.start()
        self.tap = Tap(self.topics["events"], SUBMITTED)
        await self.tap.start()

    async def prepare(self) -> None:
        pass

    async def submit(self, region: str, seq: int, correlation: str) -> None:
        key, value, headers = submit_command(region, seq, self.space.run_id, correlation)  # the same record
        await (await self.producer.send(self.topics["commands"], value=value, key=key, headers=headers))

    async def published(self, correlation: str) -> float:
        return await self.tap.wait(correlation)

    async def give_back(self, region: str, seq: int, correlation: str) -> None:
        _, headers = headers_for(RAW_RETURN, correlation, str(uuid.uuid4()), "/bench/reviewer")
        value = json.dumps({"region_code": region, "reasons": [f"Perbaiki data pekerja (putaran {seq})."]}).encode()
        await (await self.producer.send(self.topics["commands"], value=value, key=region.encode(), headers=headers))

    async def emails_done(self, since: float) -> tuple[int, int]:
        n = await self.pool.fetchval("SELECT count(*) FROM raw_sent WHERE sent_at >= to_timestamp($1)", since)
        return n, n

    async def emails(self, since: float) -> list[tuple[str, str, str, float]]:
        # No deliveries table on this side: "written" is when the batch's e-mails were recorded sent.
        rows = await self.pool.fetch("SELECT correlation_id, delivery_id::text AS d, event_type AS t, "
                                     "extract(epoch FROM sent_at)::float8 AS w FROM raw_sent "
                                     "WHERE sent_at >= to_timestamp($1)", since)
        return [(r["correlation_id"], r["d"], r["t"], r["w"]) for r in rows]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.tap.stop()
        await self.producer.stop()
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 20)
            if process.returncode is None:
                process.kill()
                await process.wait()
        await self.pool.close()
        await drop_schema_and_topics(self.space.schema, list(self.topics.values()))


# --- the chains -----------------------------------------------------------------------------------

@functools.cache
def expected_return_emails() -> dict[str, int]:
    """E-mails the shipped routing sends for one region's `commitment.returned` (the same on both sides)."""
    from services.notifications.settings import NotificationsSettings

    from .rawmail import RawMailer
    mailer = RawMailer(NotificationsSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=DSN), pipelined=False)
    return {region: mailer.count(RETURNED, region) for region in _REGIONS}


async def run_cycles(variant: Variant, sink: Sink, pg: PostgresCpu, cycles: int, seq0: int,
                     rate: float | None = None) -> dict[str, Any]:
    """Ten chains, `cycles` submit/return cycles in all; `rate` (cycles/s, over all chains) paces them."""
    per_chain = max(1, cycles // len(_REGIONS))
    since = time.time()  # the completion poll looks at rows written from here on (the same host clock)
    await variant.prepare()
    pids = variant.pids
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()} | {"sink": cpu_seconds(sink.pid), "postgres": pg.seconds()}
    rss0 = {k: rss_mb(p) for k, p in pids.items()}
    done: list[Cycle] = []
    late = 0
    t_start = time.time()

    async def chain(index: int, region: str) -> None:
        nonlocal late
        for k in range(per_chain):
            seq = seq0 + k
            if rate:
                due = t_start + (k + index / len(_REGIONS)) * len(_REGIONS) / rate
                if due > time.time():
                    await asyncio.sleep(due - time.time())
                elif k:
                    late += 1
            cycle = Cycle(region, str(uuid.uuid4()), time.time())
            await variant.submit(region, seq, cycle.correlation)
            cycle.published_at = await variant.published(cycle.correlation)
            cycle.seen_at = time.time()
            cycle.return_correlation, cycle.returned_at = str(uuid.uuid4()), time.time()
            await variant.give_back(region, seq, cycle.return_correlation)
            cycle.return_answered_at = time.time()
            done.append(cycle)

    await asyncio.gather(*(chain(i, r) for i, r in enumerate(_REGIONS)))
    last_submit = max(c.submitted_at for c in done)
    returns = expected_return_emails()
    expected = len(done) * EMAILS_PER_SUBMISSION + sum(returns[c.region] for c in done)
    at_last_submit: tuple[int, int] | None = None
    deadline = time.monotonic() + max(STEP_TIMEOUT, expected / 20)
    while True:
        written, sent = await variant.emails_done(since)
        if at_last_submit is None:
            at_last_submit = (written, sent)
        if sent >= expected:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{variant.name}: {sent}/{expected} e-mails sent")
        await asyncio.sleep(0.5)  # the figures come from the sink's acceptance times, not from this poll
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()} | {"sink": cpu_seconds(sink.pid), "postgres": pg.seconds()}
    rss1 = {k: rss_mb(p) for k, p in pids.items()}
    emails = await variant.emails(since)
    accepted = sink.accepted()
    by_correlation: dict[str, list[tuple[str, str]]] = {}
    written: dict[str, float] = {}
    for correlation, delivery, event_type, at in emails:
        by_correlation.setdefault(correlation, []).append((delivery, event_type))
        written[correlation] = max(written.get(correlation, 0.0), at)
    latencies, return_emails, missing = [], 0, 0
    until_published = sorted((c.published_at - c.submitted_at) * 1000 for c in done)
    tap_delay = sorted((c.seen_at - c.published_at) * 1000 for c in done)  # the harness's own lag
    until_written = sorted((written[c.correlation] - c.submitted_at) * 1000 for c in done if c.correlation in written)
    last_accepted = 0.0
    for c in done:
        mails = [d for d, t in by_correlation.get(c.correlation, []) if t == SUBMITTED]
        times = [accepted[d] for d in mails if d in accepted]
        missing += EMAILS_PER_SUBMISSION - len(times)
        if times:
            latencies.append((max(times) - c.submitted_at) * 1000)
            last_accepted = max(last_accepted, max(times))
        back = [accepted[d] for d, t in by_correlation.get(c.return_correlation, []) if t == RETURNED and d in accepted]
        return_emails += len(back)
        missing += returns[c.region] - len(back)
        last_accepted = max([last_accepted, *back])
    seconds = last_accepted - t_start
    answered = sorted((c.return_answered_at - c.returned_at) * 1000 for c in done)
    latencies.sort()
    n = len(done)
    per_cycle = {k: round((cpu1[k] - cpu0[k]) * 1000 / n, 3) for k in cpu0}
    return {
        "cycles": n, "emails": len(emails), "submitted_emails": n * EMAILS_PER_SUBMISSION,
        "return_emails": return_emails, "seconds": round(seconds, 3),
        "cycles_per_s": round(n / seconds, 1), "emails_per_s": round(len(emails) / seconds, 1),
        "offered_cycles_per_s": rate, "late_submits": late,
        "submit_phase_s": round(last_submit - t_start, 3),
        "emails_after_last_submit": round(1 - at_last_submit[1] / expected, 3) if at_last_submit else None,
        "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "p50_ms_until_published": round(percentile(until_published, 50), 1),
        "p99_ms_until_published": round(percentile(until_published, 99), 1),
        "p50_ms_until_written": round(percentile(until_written, 50), 1),
        "p99_ms_until_written": round(percentile(until_written, 99), 1),
        "tap_delay_p50_ms": round(percentile(tap_delay, 50), 1),
        "tap_delay_p99_ms": round(percentile(tap_delay, 99), 1),
        "return_answered_p50_ms": round(percentile(answered, 50), 1),
        "return_answered_p99_ms": round(percentile(answered, 99), 1),
        "cpu_ms_per_cycle": per_cycle | {"processes": round(sum(per_cycle[k] for k in pids), 3)},
        "rss_mb": {k: {"start": rss0[k], "end": rss1[k], "peak": peak_rss_mb(p)} for k, p in pids.items()},
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "verified": missing == 0 and len(emails) == expected and len(latencies) == n,
    }


async def settle(variant: Variant, since: float) -> None:
    """Nothing queued: every e-mail written so far accepted, commitments' outbox empty (warm-up, between runs)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        written, sent = await variant.emails_done(since)
        if written == sent and await variant.outbox_empty():
            await asyncio.sleep(0.5)
            again = await variant.emails_done(since)
            if again == (written, sent):
                return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{variant.name} did not settle")


async def run_pipeline(cycles: int, half_cycles: int, repeats: int = 1,
                       variants: tuple[str, ...] = ("raw", "service"),
                       env: dict[str, str] | None = None) -> dict[str, Any]:
    """Saturation (`cycles`, `repeats` rounds in rotating order), then half load (`half_cycles`) likewise."""
    sink = start_sink("c") if "c" in _kinds() else start_sink("aiosmtpd")
    pg = await PostgresCpu.find()
    started: dict[str, Any] = {}
    seq = 1
    t_setup = time.time() - 1
    try:
        for name in variants:
            v = ServicePipeline(sink, env) if name == "service" else RawPipeline(sink)
            await v.start()
            started[name] = v
        for v in started.values():  # the requests' e-mails out; one warm-up cycle per chain
            await settle(v, t_setup)
            await run_cycles(v, sink, pg, len(_REGIONS), seq)
        seq += 1
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in started}
        names = list(started)
        for r in range(repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                await settle(started[name], t_setup)
                runs[name].append(await run_cycles(started[name], sink, pg, cycles, seq))
                seq += cycles // len(_REGIONS)
        out: dict[str, Any] = {"sink": sink.name, "cycles": cycles, "half_load_cycles": half_cycles,
                               "repeats": repeats, "chains": len(_REGIONS),
                               "return_emails_per_region": expected_return_emails()}
        saturation = {name: _median(rs, "cycles_per_s") for name, rs in runs.items()}
        out["saturation"] = saturation
        rate = None
        if half_cycles:
            base = saturation.get("service") or next(iter(saturation.values()))
            rate = round(base["cycles_per_s"] / 2, 1)
            half: dict[str, list[dict[str, Any]]] = {n: [] for n in started}
            for r in range(repeats):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    await settle(started[name], t_setup)
                    half[name].append(await run_cycles(started[name], sink, pg, half_cycles, seq, rate))
                    seq += half_cycles // len(_REGIONS)
            out["half_load"] = {name: _median(rs, "p99_ms") for name, rs in half.items()}
        if "service" in runs and "raw" in runs:
            thr = [round(s["cycles_per_s"] / b["cycles_per_s"], 3) for s, b in zip(runs["service"], runs["raw"], strict=False)]
            out["vs_raw"] = {"cycles_per_s_ratio": sorted(thr)[len(thr) // 2], "round_ratios": thr}
            if half_cycles:
                p99 = [round(s["p99_ms"] / b["p99_ms"], 3) for s, b in zip(half["service"], half["raw"], strict=False)]
                out["vs_raw"] |= {"half_load_p99_ratio": sorted(p99)[len(p99) // 2], "half_load_p99_round_ratios": p99,
                                  "half_load_rate": rate}
        out["verified"] = all(x["verified"] for rs in runs.values() for x in rs) and all(
            x["verified"] for rs in (half.values() if half_cycles else []) for x in rs)
        return out
    finally:
        for v in started.values():
            with contextlib.suppress(Exception):
                await v.close()
        sink.stop()


def _kinds() -> list[str]:
    from .sinks import available_kinds
    return available_kinds()


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda x: x[key])
    return dict(ordered[len(ordered) // 2]) | {"runs": [x[key] for x in runs]}


async def run_pipeline_growth_point(cycles: int) -> dict[str, Any]:
    """The service alone at `cycles`, fresh processes (for growth: RSS belongs to this size alone)."""
    sink = start_sink("c") if "c" in _kinds() else start_sink("aiosmtpd")
    pg = await PostgresCpu.find()
    v = ServicePipeline(sink)
    t_setup = time.time() - 1
    try:
        await v.start()
        await settle(v, t_setup)
        await run_cycles(v, sink, pg, len(_REGIONS), 1)  # warm-up
        await settle(v, t_setup)
        res = await run_cycles(v, sink, pg, cycles, 2)
        return res | {"sink": sink.name, "us_per_cycle": round(1e6 / res["cycles_per_s"])}
    finally:
        with contextlib.suppress(Exception):
            await v.close()
        sink.stop()


if __name__ == "__main__":
    # python -m bench.pipeline [cycles [half_cycles [repeats]]]  |  growth-point CYCLES
    # BENCH_SERVICE_ENV='{"{SERVICE}_CONSUMER_FETCH_MAX_WAIT_MS": "500"}' for an A/B of a setting,
    # BENCH_VARIANTS=service for the service alone.
    from shared.platform.logging import configure_logging
    configure_logging("bench", level="WARNING", json=True)
    if sys.argv[1:2] == ["growth-point"]:
        print(json.dumps(asyncio.run(run_pipeline_growth_point(int(sys.argv[2])))))
    else:
        args = [int(a) for a in sys.argv[1:4]]
        env = json.loads(os.environ.get("BENCH_SERVICE_ENV", "{}")) or None
        variants = tuple(os.environ.get("BENCH_VARIANTS", "raw,service").split(","))
        print(json.dumps(asyncio.run(run_pipeline(*(args or [200, 100]), variants=variants, env=env)), indent=2))
