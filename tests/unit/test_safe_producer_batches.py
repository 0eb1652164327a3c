"""SafeProducer packs records into aiokafka batches itself: the same partitions, order and refusals as send().

The producer under it is a stand-in that keeps what it is handed (aiokafka's own BatchBuilder, read
back with aiokafka's record reader); the real broker path is tests/integration/test_outbox_relay.py.
"""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings, strategies as st

from shared.platform.kafka import MAX_REQUEST_BYTES, SafeProducer

# CI runs a bounded number of examples; NTB_HYPOTHESIS_PROFILE=long runs many more.
PROFILE = settings(max_examples={"ci": 300, "long": 5000}[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")],
                   deadline=None)
PARTITIONS = [0, 1, 2]


class Handed:
    """What an AIOKafkaProducer offers SafeProducer, keeping every batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, BatchBuilder]] = []
        self.client = SimpleNamespace(cluster=SimpleNamespace(available_partitions_for_topic=lambda _: set(PARTITIONS)))

    async def partitions_for(self, _topic: str) -> set[int]:
        return set(PARTITIONS)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16384, 0)  # aiokafka's default max_batch_size, no compression

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.batches.append((topic, partition, batch))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def stop(self) -> None:
        pass


def safe_over(handed: Handed) -> SafeProducer:
    producer = SafeProducer("127.0.0.1:9", client_id="unit")
    producer._producer = handed  # type: ignore[assignment]  # noqa: SLF001 - the stand-in under test
    return producer


def read(batch: BatchBuilder) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    records = MemoryRecords(bytes(batch._build()))  # noqa: SLF001 - the bytes aiokafka would send
    out = []
    while records.has_next():
        out += [(r.key, r.value, list(r.headers)) for r in records.next_batch()]
    return out


async def test_records_land_where_aiokafkas_partitioner_puts_them_each_partition_in_the_order_given():
    """Enough records for several full batches per partition: each key on DefaultPartitioner's partition,
    each partition's batches handed over in order, together holding its records in the order given."""
    handed = Handed()
    keys = [f"region-{i}".encode() for i in range(13)]
    records = [("t", keys[i % 13], f"{i:04d}".encode() * 200, [("ce_id", str(i).encode())]) for i in range(300)]
    await safe_over(handed).send_batch(records)

    per_partition: dict[int, list[bytes | None]] = {}
    for topic, partition, batch in handed.batches:
        assert topic == "t"
        for key, value, _ in read(batch):
            assert partition == DefaultPartitioner()(key, PARTITIONS, PARTITIONS)
            per_partition.setdefault(partition, []).append(value)
    assert len(handed.batches) > 2 * len(per_partition)  # full batches were handed over along the way
    for partition, values in per_partition.items():
        expected = [v for _, k, v, _ in records if DefaultPartitioner()(k, PARTITIONS, PARTITIONS) == partition]
        assert values == expected


async def test_a_record_over_the_request_limit_is_refused_before_anything_is_handed_over():
    handed = Handed()
    records = [("t", b"k", b"small", []), ("t", b"k", b"x" * MAX_REQUEST_BYTES, []), ("t", b"k", b"small", [])]
    with pytest.raises(MessageSizeTooLargeError):
        await safe_over(handed).send_batch(records)
    assert handed.batches == []


async def test_a_record_larger_than_a_batch_but_within_the_limit_goes_alone_in_its_own_batch():
    handed = Handed()
    big = b"x" * 200_000
    await safe_over(handed).send_batch([("t", b"k", b"a", []), ("t", b"k", big, []), ("t", b"k", b"b", [])])
    assert [[v for _, v, _ in read(b)] for _, _, b in handed.batches] == [[b"a"], [big], [b"b"]]


HEADER_NAME = st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.just("\ud800"))
HEADER_VALUE = st.one_of(st.binary(max_size=64), st.none(), st.text(max_size=8), st.integers(), st.floats())
HEADERS = st.one_of(
    st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=6),
    st.lists(st.one_of(st.tuples(HEADER_NAME), st.tuples(HEADER_NAME, HEADER_VALUE, HEADER_VALUE),
                       st.lists(st.text(), max_size=3)), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=4), st.binary(max_size=4), max_size=3),
    st.none(), st.text(max_size=8), st.tuples(st.tuples(st.text(), st.binary())),
)


def accepted_by_send(headers: Any) -> bool:
    """What aiokafka's send() accepts: its size estimate and its batch builder both take the headers."""
    try:
        DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", b"v", headers or [])
        return BatchBuilder(16384, 0).append(timestamp=None, key=b"k", value=b"v", headers=headers or []) is not None
    except (TypeError, ValueError, AttributeError):  # AttributeError: a name that is None
        return False


@PROFILE
@given(good=st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=4), hostile=HEADERS)
def test_hostile_headers_are_refused_as_send_refuses_them_and_nothing_is_handed_over(good, hostile):
    """Any header shape: accepted exactly when aiokafka's send() would accept it; refused with TypeError or
    ValueError (AttributeError for a name that is None) before anything is handed over (the relay sets the row
    aside); accepted ones read back as given."""
    handed = Handed()
    records = [("t", b"k", b"before", good), ("t", b"k", b"v", hostile)]

    async def send() -> None:
        await safe_over(handed).send_batch(records)

    if not accepted_by_send(hostile):
        with pytest.raises((TypeError, ValueError, AttributeError)):
            asyncio.run(send())
        assert handed.batches == []
        return
    asyncio.run(send())
    [(_, _, batch)] = handed.batches
    assert read(batch) == [(b"k", b"before", good), (b"k", b"v", list(hostile or []))]
