"""Generative, byte-level: arbitrary records on every consumed topic of the commitments service.

Published with librdkafka (confluent-kafka), a client the services do not consume with:
arbitrary keys, values and headers (NULL, duplicated, non-UTF-8, oversized), values up to
the broker's limit, deep nesting, every registered type on every topic, interleaved with
valid realization reports (some sent twice). After each example the test asserts, per topic:
records consumed = applied + duplicate + dead_lettered (from /metrics); every valid report
applied exactly once; nothing written for a refused record; the consumer kept moving.

CI runs a bounded number of examples; a longer run is one command:

    NTB_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/integration/test_inbound_generative.py -q -s

It prints the counts it tried (docs/reliability.md records a run).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.commitments.bootstrap import build
from services.commitments.settings import CommitmentsSettings
from shared.contracts import registry
from shared.contracts.regions import regions
from shared.contracts.topics import COMMITMENTS_INBOUND, INVITATIONS_EVENTS, REALIZATION_INBOUND

from .conftest import DSN, delete_topics, service_settings
from .inbound import REPORT, RawRecord, consumed, event, produce, records_total, report_body

pytestmark = [pytest.mark.integration]

PROFILES = {"ci": 20, "long": 300}
EXAMPLES = PROFILES[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")]
TOPICS = (INVITATIONS_EVENTS, COMMITMENTS_INBOUND, REALIZATION_INBOUND)
TYPES = sorted(spec.type for spec in registry)
CE = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "ce_correlationid",
      "content-type", "CE_ID", "Ce_Type")
_SERIAL = itertools.count()
BROKER_LIMIT = 1_048_000  # a little under message.max.bytes (1,048,588) for the record framing

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False), st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


@st.composite
def header_value(draw: Any) -> bytes | None:
    return draw(st.one_of(
        st.none(), st.just(b""), st.binary(max_size=40), st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"1.0", b"application/json", b"application/cloudevents+json", b"/x", b"2026-01-01T00:00:00Z"]),
        st.sampled_from(TYPES).map(str.encode), st.integers(257, 8000).map(lambda n: b"i" * n)))


@st.composite
def value_bytes(draw: Any) -> bytes | None:
    kind = draw(st.sampled_from(["none", "binary", "json", "deep", "big", "typed", "typed-mutated"]))
    if kind == "none":
        return None
    if kind == "binary":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_any)).encode()
    if kind == "deep":
        n = draw(st.integers(20, 5000))
        return b"[" * n + b"]" * n
    if kind == "big":
        return b'{"x": "' + b"y" * draw(st.integers(200_000, BROKER_LIMIT - 40_000)) + b'"}'
    body = report_body(f"h-{next(_SERIAL)}")
    if kind == "typed-mutated":
        field = draw(st.sampled_from(sorted(body)))
        body[field] = draw(json_any)
    return json.dumps(body).encode()


@st.composite
def hostile(draw: Any) -> tuple[str, RawRecord]:
    topic = draw(st.sampled_from(TOPICS))
    key = draw(st.one_of(st.none(), st.binary(max_size=20), st.sampled_from([c.encode() for c in regions()]),
                         st.just(b"5201")))
    value = draw(value_bytes())
    headers: list[tuple[str, bytes | None]] = []
    if draw(st.booleans()):  # a plausible CloudEvent set to mutate
        _, valid_headers = event(draw(st.sampled_from(TYPES)), value or b"{}",
                                 event_id=f"h-{next(_SERIAL)}")
        headers = list(valid_headers)
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(st.sampled_from(CE), st.text(st.characters(exclude_categories=("Cs",)),
                                                            min_size=1, max_size=12)))
        headers.insert(draw(st.integers(0, len(headers))), (name, draw(header_value())))
    return topic, (key, value, headers)


@st.composite
def examples(draw: Any) -> list[tuple[str, RawRecord, str | None]]:
    """Records in publishing order: (topic, record, report_id if it is a valid report)."""
    out: list[tuple[str, RawRecord, str | None]] = []
    for _ in range(draw(st.integers(1, 6))):
        topic, record = draw(hostile())
        out.append((topic, record, None))
    for _ in range(draw(st.integers(1, 3))):
        report_id = f"v-{next(_SERIAL)}"  # unique: every valid report is its own business effect
        region = draw(st.sampled_from(sorted(regions())))
        value, headers = event(REPORT, report_body(report_id, region), event_id=f"e-{report_id}")
        record = (region.encode(), value, headers)
        out.insert(draw(st.integers(0, len(out))), (REALIZATION_INBOUND, record, report_id))
        if draw(st.booleans()):  # the same event again: a duplicate
            out.append((REALIZATION_INBOUND, record, None))
    return out


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Harness:
    """The commitments service on its own event loop thread, so hypothesis drives it synchronously."""

    def __init__(self, prefix: str, schema: str) -> None:
        self.prefix, self.schema = prefix, schema
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings_ = service_settings(CommitmentsSettings, prefix, schema, timer_poll_seconds=60.0)
        self.runtime, _ = build(settings_)
        self.sent: Counter[str] = Counter()
        self.valid: list[str] = []
        self.tried: Counter[str] = Counter()

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def wait_settled(self, timeout: float = 90) -> dict[tuple[str, str], float]:
        deadline = self.loop.time() + timeout
        while True:
            totals = await records_total(self.runtime)
            if all(consumed(totals, t) >= n for t, n in self.sent.items()):
                return totals
            if self.loop.time() > deadline:
                raise AssertionError(f"consumer stopped moving: sent {dict(self.sent)}, finished {totals}")
            await asyncio.sleep(0.2)

    async def applied_reports(self) -> dict[str, int]:
        conn = await asyncpg.connect(DSN)
        try:
            rows = await conn.fetch(f'SELECT report_id FROM "{self.schema}".realization_reports')
            inbox = await conn.fetch(f'SELECT event_type, count(*) AS n FROM "{self.schema}".inbox GROUP BY 1')
            commitments = await conn.fetchval(f'SELECT count(*) FROM "{self.schema}".commitments')
        finally:
            await conn.close()
        found = Counter(r["report_id"] for r in rows)
        found["__inbox_other__"] = sum(r["n"] for r in inbox if r["event_type"] != REPORT)
        found["__commitments__"] = commitments
        return dict(found)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    run_id = uuid.uuid4().hex[:10]
    h = Harness(f"t{run_id}.", f"t{run_id}_com")
    h.run(h.runtime.start())
    try:
        yield h
    finally:
        h.run(h.runtime.stop())
        h.loop.call_soon_threadsafe(h.loop.stop)
        h.thread.join(10)

        async def drop() -> None:
            conn = await asyncpg.connect(DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{h.schema}" CASCADE')
            finally:
                await conn.close()
        asyncio.run(drop())
        delete_topics(h.prefix)
        print(f"\ngenerative inbound run: {EXAMPLES} examples; records sent per topic {dict(h.sent)}; "
              f"valid reports {len(h.valid)}; tried {dict(h.tried)}")


@pytest.mark.timeout(max(300, EXAMPLES * 10))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=PROFILES["ci"] == EXAMPLES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
@given(batch=examples())
def test_every_record_is_applied_once_or_dead_lettered(harness: Harness, batch) -> None:
    for topic, (key, value, headers), report_id in batch:
        produce(harness.prefix + topic, [(key, value, headers)])
        harness.sent[topic] += 1
        harness.tried["records"] += 1
        harness.tried["null_headers"] += sum(v is None for _, v in headers)
        harness.tried["duplicate_headers"] += len(headers) - len({k.lower() for k, _ in headers})
        harness.tried["big_values"] += len(value or b"") > 200_000
        harness.tried["deep_values"] += (value or b"").startswith(b"[" * 33)
        harness.tried["non_utf8_headers"] += sum(not _utf8(v) for _, v in headers if v is not None)
        harness.tried["no_key"] += key is None
        if report_id:
            harness.valid.append(report_id)
    totals = harness.run(harness.wait_settled())
    for topic, sent in harness.sent.items():
        by_outcome = {o: v for (t, o), v in totals.items() if t == topic}
        assert set(by_outcome) <= {"applied", "duplicate", "dead_lettered"}, by_outcome
        assert sum(by_outcome.values()) == sent, (topic, by_outcome, sent)
    applied = harness.run(harness.applied_reports())
    for report_id in harness.valid:
        assert applied.get(report_id) == 1, report_id
    # Only valid reports changed anything: no commitment opened, no other event type remembered.
    assert applied["__commitments__"] == 0 and applied["__inbox_other__"] == 0, applied
    harness.tried["dead_lettered"] = int(sum(v for (t, o), v in totals.items() if o == "dead_lettered"))
    harness.tried["duplicate"] = int(sum(v for (t, o), v in totals.items() if o == "duplicate"))
    harness.tried["applied"] = int(sum(v for (t, o), v in totals.items() if o == "applied"))
