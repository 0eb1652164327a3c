"""Integration fixtures: the real local Kafka and PostgreSQL, isolated per test.

`make test` starts the stack (deploy/local/stack.sh) before pytest runs; here we only
check that it answers. Every test gets its own topic prefix, consumer groups and
database schemas, so reruns and neighbours never collide.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.roles import Role
from shared.platform.auth import ApiKeyStore
from shared.platform.kafka_security import client_options
from tests.conftest import TOPIC_COUNT

ROOT = Path(__file__).resolve().parents[2]
# Same defaults as deploy/local (which honours LOCAL_KAFKA_PORT / LOCAL_PG_PORT).
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{os.environ.get('LOCAL_KAFKA_PORT', '19092')}")
DSN = os.environ.get(
    "DATABASE_URL", f"postgresql://ntb:ntb@127.0.0.1:{os.environ.get('LOCAL_PG_PORT', '15432')}/ntb"
)
MANAGED_STACK = "KAFKA_BOOTSTRAP_SERVERS" not in os.environ or os.environ.get("LOCAL_STACK_MANAGED") == "1"


def stack(*args: str) -> None:
    """Drive the project's local stack scripts (only when this run owns the stack)."""
    subprocess.run([str(ROOT / "deploy/local" / args[0]), *args[1:]], check=True, timeout=300)


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up() -> None:
    async def probe() -> None:
        conn = await asyncpg.connect(DSN, timeout=10)
        await conn.close()
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000, **client_options())
        await producer.start()
        await producer.stop()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"the local stack is not reachable ({exc!r}); run `make stack-up` or `make test`", returncode=3)


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def broker_topics(timeout: float = 15.0) -> set[str] | None:
    """Every topic name on the broker (librdkafka, beside the aiokafka the code uses); None if unreachable."""
    from confluent_kafka.admin import AdminClient

    from shared.platform.kafka_security import from_env

    try:
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP, **from_env().librdkafka_options()})
        return set(admin.list_topics(timeout=timeout).topics)
    except Exception:  # noqa: BLE001 - a measurement or a clean-up, never a test's outcome
        return None


def delete_topics(prefix: str, timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a test's own), waiting for the broker.

    Synchronous (librdkafka), so it works from any fixture, async test or not, and after a
    test's own event loop is gone. Errors are swallowed: a broker a fault test left down
    keeps the topics, and the next run's prefixes are fresh anyway."""
    from confluent_kafka.admin import AdminClient

    from shared.platform.kafka_security import from_env

    assert prefix.startswith("t") and prefix.endswith("."), f"not a test prefix: {prefix!r}"
    deleted: list[str] = []
    for attempt in range(3):  # a busy broker may time a first request out
        try:
            admin = AdminClient({"bootstrap.servers": BOOTSTRAP, **from_env().librdkafka_options()})
            mine = sorted(t for t in admin.list_topics(timeout=timeout).topics if t.startswith(prefix))
            if not mine:
                return deleted
            for future in admin.delete_topics(mine, operation_timeout=timeout, request_timeout=timeout).values():
                future.result(timeout=timeout)
            deleted += mine
        except Exception:  # noqa: BLE001 - clean-up only
            time.sleep(2 * (attempt + 1))
    return deleted


@pytest.fixture
def topic_prefix(run_id: str) -> Iterator[str]:
    """This test's topic prefix; every topic created under it (the services' topics, the ten
    regional inbound topics, their DLQs, a test's own) is deleted when the test ends, so a
    long-lived local broker does not pile up thousands of partitions (it restarts in seconds
    instead of minutes). Fixtures that start services depend on this one, so they stop first."""
    prefix = f"t{run_id}."
    yield prefix
    delete_topics(prefix)


@pytest.fixture(scope="session", autouse=True)
def _topic_count(request: pytest.FixtureRequest, _stack_is_up: None) -> Iterator[None]:
    """Topics on the broker before and after the run, shown in the summary (tests/conftest.py)."""
    before = broker_topics()
    yield
    after = broker_topics()
    if before is not None and after is not None:
        request.config.stash[TOPIC_COUNT] = (len(before), len(after), sorted(after - before))


@pytest.fixture
def schema_for(run_id: str) -> Callable[[str], str]:
    return lambda service: f"t{run_id}_{service}"


@pytest.fixture
async def db() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(DSN)
    yield conn
    await conn.close()


@pytest.fixture
async def cleanup_schemas(run_id: str) -> AsyncIterator[None]:
    yield
    conn = await asyncpg.connect(DSN)
    try:
        for row in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"t{run_id}_%"):
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()


def service_settings(cls: type, topic_prefix: str, schema: str, **overrides: Any) -> Any:
    return cls(
        kafka_bootstrap_servers=BOOTSTRAP, database_url=DSN, topic_prefix=topic_prefix, db_schema=schema,
        http_port=0, outbox_poll_seconds=0.2, retry_backoff_max_seconds=2.0, **overrides,
    )


async def issue_key(runtime: Any, role: Role, region: str | None = None) -> str:
    store = ApiKeyStore(runtime.pool, runtime.settings.api_key_pepper)
    token, _ = await store.issue(name=f"test {role.value}", role=role, region_code=region)
    return token


def http_client(app: Any, runtime: Any) -> httpx.AsyncClient:
    """A client for the service's real ASGI app, in process (its database and Kafka are real)."""
    app.state.api_keys = ApiKeyStore(runtime.pool, runtime.settings.api_key_pepper)
    if not any(getattr(r, "path", None) == "/healthz" for r in app.routes):
        app.include_router(runtime.health_router())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def read_topic(topic: str, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read at least `expect` records from the start of a topic (all partitions)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False,
        group_id=None,
        **client_options(),
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


async def published_events(db: asyncpg.Connection, schema: str, topic: str, event_type: str | None = None, *,
                           timeout: float = 30.0) -> list[dict[str, Any]]:
    """What a service published to `topic`: {id, type, time, payload} once per event id, oldest first.

    Waits for the service's outbox to drain (the relay deletes a row only once Kafka has acked
    it), then reads the topic to its end: an empty answer means nothing was published."""
    await eventually(lambda: db.fetchval(f'SELECT count(*) = 0 FROM "{schema}".outbox'), timeout=timeout)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic}: error {described['error_code']}"
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None, **client_options())
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = asyncio.get_running_loop().time() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert asyncio.get_running_loop().time() < deadline, f"could not read {topic} to its end"
            for items in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(items)
    finally:
        await consumer.stop()
    events: dict[str, dict[str, Any]] = {}
    for record in records:
        headers = {k: v.decode() for k, v in record.headers or ()}
        events.setdefault(headers["ce_id"], {"id": headers["ce_id"], "type": headers["ce_type"],
                                             "time": headers["ce_time"], "payload": json.loads(record.value)})
    ordered = sorted(events.values(), key=lambda e: e["time"])
    return [e for e in ordered if event_type is None or e["type"] == event_type]


def canonical_key(value: bytes | None, headers: Any, fallback: bytes = b"k") -> bytes:
    """The Kafka key the consumers expect for this record (the payload's key), else `fallback`.

    Consumers refuse a record whose key is not its payload's key; test senders that do not
    care about the key get the right one, and poison records keep the fallback."""
    from shared.contracts import registry
    from shared.platform.envelope import decode

    try:
        event = decode(value, headers)
        spec = registry.spec(event.type)
        return spec.key_of(spec.model.model_validate(event.data_json())).encode()
    except Exception:  # noqa: BLE001 - not a valid event: any key will do
        return fallback


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll an async check until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
