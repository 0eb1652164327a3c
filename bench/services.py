"""The three real services as separate processes, for the benchmarks that measure them whole.

Each service runs `python -m services.<name>` as it does in production, under a private topic
prefix and schema (nothing collides with other runs), on a free HTTP port, logging JSON lines
to a file. Each connects to PostgreSQL as a role of its own (`bench_<service>`), so the
server's statistics (pg_stat_statements) tell the services apart; CPU comes from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from .harness import BOOTSTRAP, DSN

NAMES = ("invitations", "commitments", "notifications")
ROLE_PASSWORD = "bench-only-role"  # a throw-away local role; the stack accepts only local connections


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role_of(name: str) -> str:
    return f"bench_{name}"


def dsn_as(role: str) -> str:
    parts = urlsplit(DSN)
    netloc = f"{role}:{ROLE_PASSWORD}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def ensure_roles() -> None:
    """One login role per service (superuser: the services create their schemas; a local stack only)."""
    conn = await asyncpg.connect(DSN)
    try:
        for name in NAMES:
            role = role_of(name)
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{ROLE_PASSWORD}'")
    finally:
        await conn.close()


@dataclass
class Service:
    name: str
    port: int
    schema: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)


@dataclass
class Services:
    """Start with `await Services.start(...)`; `stop()` ends them (SIGTERM, a graceful stop)."""

    run_id: str
    prefix: str
    running: dict[str, Service] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-services-")))

    @classmethod
    async def start(cls, names: tuple[str, ...] = NAMES, *, smtp_port: int | None = None,
                    env: dict[str, str] | None = None, ready_timeout: float = 120.0) -> Services:
        await ensure_roles()
        run_id = uuid.uuid4().hex[:8]
        self = cls(run_id, f"bench{run_id}.")
        try:
            for name in names:
                self._spawn(name, smtp_port, env or {})
            for service in self.running.values():
                self._wait_ready(service, ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, smtp_port: int | None, extra: dict[str, str]) -> None:
        upper = name.upper()
        port = free_port()
        schema = f"bench_{name[:3]}_{self.run_id}"
        env = os.environ | {
            "NTB_ENV": "development", "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": dsn_as(role_of(name)),
            "TOPIC_PREFIX": self.prefix, "TOPICS_PROVISION": "create", "PYTHONUNBUFFERED": "1",
            f"{upper}_DB_SCHEMA": schema, f"{upper}_HTTP_PORT": str(port), f"{upper}_LOG_JSON": "true",
        }
        if smtp_port is not None:
            env |= {f"{upper}_SMTP_HOST": "127.0.0.1", f"{upper}_SMTP_PORT": str(smtp_port),
                    f"{upper}_SMTP_STARTTLS": "false"}
        env |= {k.replace("{SERVICE}", upper): v for k, v in extra.items()}
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
        self.running[name] = Service(name, port, schema, process, log)

    @staticmethod
    def _wait_ready(service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited during start-up:\n" + service.log.read_text()[-3000:])
            with contextlib.suppress(OSError), urllib.request.urlopen(service.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"{service.name} not ready after {timeout:.0f} s")

    def __getitem__(self, name: str) -> Service:
        return self.running[name]

    def stop(self) -> None:
        for service in self.running.values():
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.running.values():
            try:
                service.process.wait(60)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(10)

    async def drop(self) -> None:
        """Remove the schemas and topics this run created."""
        from .harness import drop_schema_and_topics
        for service in self.running.values():
            await drop_schema_and_topics(service.schema, [])
        await drop_prefixed_topics(self.prefix)


async def drop_prefixed_topics(prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.platform.kafka_security import client_options
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **client_options())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    except Exception:  # noqa: BLE001 - best effort: the names are unique to the run
        pass
    finally:
        await admin.close()
