"""B4 end to end, bench-only: `commitment.submitted.v1` on Kafka -> notifications -> SMTP sink.

The real notifications service (`services.notifications.bootstrap.build`, its shipped routing,
recipients, templates and default sender settings) consumes CommitmentSubmitted events produced
straight onto its input topic, each with its own commitment id, region and revision (distinct
events). An aiosmtpd sink in a separate process (so it does not share this process's CPU)
appends `accept-time notification-id` per accepted message. With the shipped routing every
submission is e-mailed to the two Disnakertrans reviewers and the two BPJS staff: an event
counts as delivered when its last e-mail was accepted.

- saturation: N events produced as fast as possible; events/s = N / (last acceptance - first send);
- half load: M events sent at half that rate; latency per event = last acceptance - send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.contracts import registry
from shared.contracts.topics import COMMITMENTS_EVENTS
from shared.envelope import CloudEvent
from shared.kafka import SAFE_PRODUCER

from shared.contracts.commitments import SubmitCommitment

from .harness import BOOTSTRAP, DSN, drop_schema_and_topics, new_space, submit_event, submitted_model
from shared.kafka_security import client_options

TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def submitted_event(i: int, run_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    """(key, value, headers, event id) of one distinct CommitmentSubmitted event."""
    key, value, _ = submit_event(i, run_id)
    cmd = SubmitCommitment.model_validate_json(value)
    payload = submitted_model(cmd, uuid.uuid4(), i + 1)
    event = CloudEvent.new(source="/ntb/rakor/commitments", type=registry.spec_for(payload).type,
                           data=payload.model_dump_json().encode())
    return key, event.data, event.to_headers(), event.id


def rss_mb() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_rss_mb() -> float:
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of every process named postgres (the server's backends and workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
    return total


class SinkLog:
    """The sink's `accept-time notification-id` lines, read incrementally (the harness must stay cheap)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.accepted: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        """notification id -> acceptance time (wall clock), first acceptance wins."""
        with contextlib.suppress(FileNotFoundError), open(self._path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                parts = line.split()
                if len(parts) == 2:
                    self.accepted.setdefault(parts[1].decode(), float(parts[0]))
        return self.accepted


async def run_b4(n: int, m: int) -> dict[str, Any]:
    from services.notifications.bootstrap import build
    from services.notifications.settings import NotificationsSettings

    space = new_space("b4")
    port = free_port()
    sink_file = Path(tempfile.mkdtemp(prefix="bench-b4-")) / "accepted.txt"
    sink = subprocess.Popen([sys.executable, "-m", "bench.b4", "--sink", str(port), str(sink_file)],
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    settings = NotificationsSettings(
        kafka_bootstrap_servers=BOOTSTRAP, database_url=DSN, db_schema=space.schema, topic_prefix=space.prefix,
        smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, http_port=0,
    )
    runtime, _ = build(settings)
    sink_log = SinkLog(sink_file)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, **SAFE_PRODUCER, **client_options())
    topic = runtime.topic(COMMITMENTS_EVENTS)
    out: dict[str, Any] = {"n": n, "m": m}
    try:
        for _ in range(100):  # the sink is up
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            await asyncio.sleep(0.1)
        await runtime.start()
        await producer.start()
        await asyncio.sleep(3)  # the consumer group has joined its partitions

        picked: dict[str, float] = {}

        async def settle(event_ids: list[str]) -> dict[str, float]:
            """Wait until every event's deliveries exist and are all accepted; event id -> last acceptance.

            Polls cheap totals (every delivery in this private schema is ours) and reads the rows
            once at the end, so the harness costs little beside the service it measures."""
            # At least TIMEOUT, longer for big runs (at 20 events/s at worst): 100k takes ~25 min.
            deadline = time.monotonic() + max(TIMEOUT, len(event_ids) / 20)
            wanted = len(event_ids) + len(picked)  # events of earlier phases are in the totals too
            while True:
                totals = await runtime.pool.fetchrow(
                    "SELECT count(DISTINCT source_event_id) AS events, count(*) AS emails, "
                    "count(*) FILTER (WHERE status = 'pending') AS pending FROM deliveries WHERE channel = 'email'")
                accepted = sink_log.read()
                if totals["events"] >= wanted and totals["pending"] == 0 and len(accepted) >= totals["emails"]:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"B4: {totals['events']}/{wanted} events, {len(accepted)}/{totals['emails']} "
                                       f"e-mails accepted, {totals['pending']} pending")
                # The figures come from the sink's acceptance times, not from when this poll
                # notices: a slow poll costs the measurement nothing and the database less.
                await asyncio.sleep(1.0)
            rows = await runtime.pool.fetch(
                "SELECT source_event_id, delivery_id::text AS d, status, "
                "extract(epoch FROM created_at)::float8 AS created FROM deliveries "
                "WHERE source_event_id = ANY($1::text[]) AND channel = 'email'", event_ids)
            missing = [r["d"] for r in rows if r["d"] not in accepted and r["status"] != "failed"]
            assert not missing and len({r["source_event_id"] for r in rows}) == len(event_ids), missing[:5]
            last: dict[str, float] = {}
            for r in rows:
                last[r["source_event_id"]] = max(last.get(r["source_event_id"], 0.0), accepted.get(r["d"], 0.0))
                # When the consumer's transaction that wrote the event's deliveries began (now()).
                picked[r["source_event_id"]] = r["created"]
            # When the consumer had written the last delivery row: consumer- or sender-bound?
            last["_consumed"] = max(r["created"] for r in rows)
            out.setdefault("emails_per_event", round(len(rows) / len(event_ids), 2))
            out.setdefault("failed", 0)
            out["failed"] += sum(r["status"] == "failed" for r in rows)
            return last

        # Saturation: everything at once (built and sent in chunks: the harness's memory stays flat).
        cpu0 = cpu_seconds(os.getpid()), cpu_seconds(sink.pid), postgres_cpu_seconds()
        rss0 = rss_mb()
        t0 = time.time()
        event_ids: list[str] = []
        for first in range(0, n, 1000):
            chunk = [submitted_event(i, space.run_id) for i in range(first, min(n, first + 1000))]
            futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h, _ in chunk]
            await asyncio.gather(*futures)
            event_ids += [e[3] for e in chunk]
        last = await settle(event_ids)
        consumed = last.pop("_consumed") - t0
        elapsed = max(last.values()) - t0
        rate = n / elapsed
        cpu1 = cpu_seconds(os.getpid()), cpu_seconds(sink.pid), postgres_cpu_seconds()
        # Where the CPU went, per event: this process (consumer, sender, relay and the harness), the
        # SMTP sink, all PostgreSQL processes of the machine; Kafka is not counted.
        cpu_ms = {name: round((b - a) * 1000 / n, 2) for name, a, b in zip(("service", "sink", "postgres"), cpu0, cpu1)}
        out["saturation"] = {"seconds": round(elapsed, 3), "events_per_s": round(rate, 1),
                             "emails_per_s": round(rate * out["emails_per_event"], 1),
                             "consumer_done_s": round(consumed, 3),
                             "consumer_events_per_s": round(n / consumed, 1),
                             "cpu_ms_per_event": cpu_ms, "rss_mb_before": rss0, "peak_rss_mb": peak_rss_mb()}
        if not m:  # saturation only (B5 growth points)
            out["verified"] = out["failed"] == 0
            return out

        # Half load: paced sends, latency from send to the event's last accepted e-mail.
        half = rate / 2
        events = [submitted_event(n + i, space.run_id) for i in range(m)]
        sent_at: dict[str, float] = {}
        start = time.time()
        for j, (k, v, h, event_id) in enumerate(events):
            delay = start + j / half - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[event_id] = time.time()
            await producer.send(topic, value=v, key=k, headers=h)
        await producer.flush()
        last = await settle(list(sent_at))
        last.pop("_consumed")
        latencies = sorted((last[e] - sent_at[e]) * 1000 for e in sent_at)
        # The split: Kafka + the consumer's poll until its transaction began; the rest is the
        # transaction, the wake-up, the claim and the SMTP exchange.
        to_consumer = sorted((picked[e] - sent_at[e]) * 1000 for e in sent_at)
        to_sink = sorted((last[e] - picked[e]) * 1000 for e in sent_at)
        pick = lambda q: latencies[min(len(latencies) - 1, max(0, round(q / 100 * len(latencies) + 0.5) - 1))]  # noqa: E731
        out["half_load"] = {"events_per_s": round(half, 1), "events": m, "p50_ms": round(pick(50), 1),
                            "p99_ms": round(pick(99), 1), "max_ms": round(latencies[-1], 1),
                            "p50_ms_until_consumed": round(to_consumer[len(to_consumer) // 2], 1),
                            "p50_ms_consumed_to_accepted": round(to_sink[len(to_sink) // 2], 1)}
        out["verified"] = out["failed"] == 0
    finally:
        await producer.stop()
        await runtime.stop()
        sink.terminate()
        sink.wait(10)
        await drop_b4(space.schema, runtime.topics_in + runtime.topics_out)
    return out


async def drop_b4(schema: str, topics: list[str]) -> None:
    from shared.contracts.topics import dlq

    await drop_schema_and_topics(schema, [*topics, *(dlq(t) for t in topics)])


def sink_main(port: int, path: str) -> None:
    """A minimal SMTP sink: accept everything, append `time notification-id` per message."""
    from aiosmtpd.controller import Controller

    out = open(path, "a", buffering=1)  # noqa: SIM115 - line-buffered for the reader

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            now = time.time()
            for line in envelope.content.split(b"\r\n", 40)[:40]:
                if line.lower().startswith(b"x-notification-id:"):
                    out.write(f"{now:.6f} {line.split(b':', 1)[1].strip().decode()}\n")
                    break
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sink"]:
        sink_main(int(sys.argv[2]), sys.argv[3])
