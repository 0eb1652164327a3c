"""Fault tests: the real stack, the services as real processes, and the faults made real.

The integration fixtures (real Kafka and PostgreSQL, isolated per test) are re-exported here;
`ServiceProcess` runs `python -m services.<name>` so SIGKILL and SIGTERM are the real thing.
Every test records one line of figures with `report(...)`; they are printed at the end of the
run and, when FAULTS_REPORT_FILE is set, appended there as JSON lines (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.platform.kafka_security import client_options
from tests.integration.conftest import (  # noqa: F401 - fixtures re-exported for this folder
    BOOTSTRAP,
    DSN,
    MANAGED_STACK,
    ROOT,
    _stack_is_up,
    _topic_count,
    cleanup_schemas,
    db,
    run_id,
    schema_for,
    stack,
    topic_prefix,
)

needs_managed_stack = pytest.mark.skipif(
    not MANAGED_STACK, reason="kills and restarts servers: only against the project's own local stack"
)

RESULTS: list[dict[str, Any]] = []


def kafka(action: str) -> None:
    """`kafka.sh start|kill` of this run's stack, with a readiness wait that suits a loaded machine.

    After SIGKILL the broker recovers every partition on disk before it answers; on the shared
    2-core machine that took 55-100 s, beyond the script's default of 90 s (LOCAL_KAFKA_START_TIMEOUT).
    """
    env = os.environ | {"LOCAL_KAFKA_START_TIMEOUT": os.environ.get("LOCAL_KAFKA_START_TIMEOUT", "240")}
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), action], check=True, timeout=300, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(test: str, *, sent: int, applied: int, lost: int, duplicates: int, recovery_s: float | None,
           **extra: Any) -> dict[str, Any]:
    """Record (and print) the figures of one fault test."""
    row = {"test": test, "sent": sent, "applied": applied, "lost": lost, "duplicates": duplicates,
           "recovery_s": None if recovery_s is None else round(recovery_s, 2), **extra}
    RESULTS.append(row)
    print("FAULT " + " ".join(f"{k}={v}" for k, v in row.items()))
    target = os.environ.get("FAULTS_REPORT_FILE")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return row


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section("fault figures")
        for row in RESULTS:
            terminalreporter.write_line(" ".join(f"{k}={v}" for k, v in row.items()))


class ServiceProcess:
    """One service as a real OS process on a free HTTP port, logging JSON lines to a file."""

    def __init__(self, service: str, *, topics_prefix: str, schema: str, log_dir: Path, **settings: Any) -> None:
        self.service = service
        self.port = free_port()
        prefix = service.upper() + "_"
        self.env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "TOPIC_PREFIX": topics_prefix,
            "PYTHONPATH": str(ROOT), f"{prefix}DB_SCHEMA": schema, f"{prefix}HTTP_PORT": str(self.port),
            f"{prefix}LOG_JSON": "true", f"{prefix}OUTBOX_POLL_SECONDS": "0.2",
            f"{prefix}RETRY_BACKOFF_MAX_SECONDS": "1",
        } | {f"{prefix}{k.upper()}": str(v) for k, v in settings.items()}
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready_timeout: float = 60.0) -> None:
        self.starts += 1
        log = open(self.log_dir / f"{self.service}-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.service}"], env=self.env, cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + ready_timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.service} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.service} not ready within {ready_timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, exactly as a crashed host or OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the graceful shutdown; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        logs = sorted(self.log_dir.glob(f"{self.service}-{self.port}-*.log"))
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else ""

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.log_dir.glob(f"{self.service}-{self.port}-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        return out

    async def handled(self) -> dict[str, float]:
        """ntb_messages_handled_total by outcome, from GET /metrics (this process's life only)."""
        return await self._counter_by("ntb_messages_handled_total", "outcome")

    async def failures(self) -> dict[str, float]:
        """ntb_handler_failures_total by kind (transient: retried; error: counted toward the DLQ)."""
        return await self._counter_by("ntb_handler_failures_total", "kind")

    async def _counter_by(self, metric: str, label: str) -> dict[str, float]:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            text = (await client.get("/metrics")).text
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(metric + "{"):
                value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                counts[value] = counts.get(value, 0) + float(line.rsplit(" ", 1)[1])
        return counts


@pytest.fixture
def processes(tmp_path: Path) -> Any:
    """A factory of service processes, all killed at the end of the test whatever happened."""
    started: list[ServiceProcess] = []

    def make(service: str, topics_prefix: str, schema: str, **settings: Any) -> ServiceProcess:
        proc = ServiceProcess(service, topics_prefix=topics_prefix, schema=schema, log_dir=tmp_path, **settings)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


async def produce(topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    """Publish (key, value, headers) records as an outside system would: idempotent, acks=all."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                                max_request_size=2 * 1024 * 1024, linger_ms=5, **client_options())
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key, headers=headers)
                   for key, value, headers in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(topic: str, *, until: Callable[[list[Any]], bool], timeout: float = 30.0,
                   settle: float = 1.0) -> list[Any]:
    """Read a topic from the start until `until(records)` holds, then drain for `settle` seconds more."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_bytes=8 * 1024 * 1024,
                                max_partition_fetch_bytes=4 * 1024 * 1024, **client_options())
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not until(records):
            for items in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(items)
        settle_end = loop.time() + settle
        while loop.time() < settle_end:
            for items in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


def ce_ids(records: list[Any], type_suffix: str = "") -> list[str]:
    """The ce_id of each record (of the given type), in read order, duplicates included."""
    out = []
    for r in records:
        headers = dict(r.headers or ())
        if type_suffix and not headers.get("ce_type", b"").decode().endswith(type_suffix):
            continue
        out.append(headers["ce_id"].decode())
    return out


async def wait_for(check: Callable[[], Any], *, timeout: float = 45.0, interval: float = 0.1) -> Any:
    """Poll an async check until it is truthy; returns its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def issue_keys(schema: str, wanted: list[tuple[Any, str | None]]) -> dict[tuple[Any, str | None], str]:
    """API keys in a service's schema, issued as `python -m services.<name> keys issue` does (same store)."""
    from pydantic import SecretStr

    from shared.platform.auth import ApiKeyStore
    from shared.platform.db import create_pool
    from shared.platform.settings import DEVELOPMENT_API_KEY_PEPPER

    pool = await create_pool(DSN, schema, max_size=2)
    try:
        # The service processes run in development mode, with its built-in pepper.
        store = ApiKeyStore(pool, SecretStr(DEVELOPMENT_API_KEY_PEPPER))
        return {(role, region): (await store.issue(name=f"fault {role.value}", role=role, region_code=region))[0]
                for role, region in wanted}
    finally:
        await pool.close()
