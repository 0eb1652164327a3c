"""Every record the broker accepts reaches the project's code, whatever its header names.

aiokafka decodes each header *name* as strict UTF-8 while it unpacks a fetch response. A
single record whose header name is not UTF-8 (kcat and raw clients can send one) makes
that decoding raise for the whole fetch: the consumer never sees that record nor any
record fetched with it, and retries the same fetch forever.

`install()` swaps the fetcher's record reader for one that parses with aiokafka's fast
reader as before and, only when that fails to decode a header name, re-reads the fetched
bytes with aiokafka's pure-Python reader keeping undecodable name bytes as lone
surrogates (`surrogateescape`). The envelope decoder then refuses such a name with a
reason, and the dead-letter path keeps the exact bytes (see shared.platform.dead_letter).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher as _fetcher
from aiokafka.record import memory_records as _memory_records
from aiokafka.record.default_records import _DefaultRecordBatchPy

_FastMemoryRecords = _memory_records.MemoryRecords


def header_name_bytes(name: str) -> bytes:
    """The header name exactly as it was sent (undoes `surrogateescape`)."""
    return name.encode("utf-8", "surrogateescape")


class _LenientBytes(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes.decode(self, encoding, "surrogateescape")


class _LenientBuffer(bytearray):
    def __getitem__(self, item: Any) -> Any:
        got = bytearray.__getitem__(self, item)
        return _LenientBytes(got) if isinstance(item, slice) else got


class _LenientBatch(_DefaultRecordBatchPy):
    _buffer: Any
    def _read_msg(self, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self._buffer, _LenientBuffer):
            self._buffer = _LenientBuffer(self._buffer)
        return super()._read_msg(*args, **kwargs)


class _LenientMemoryRecords(_memory_records._MemoryRecordsPy):  # noqa: SLF001 - the pure-Python reader we extend
    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        next_slice = self._next_slice
        if next_slice is not None and len(next_slice) >= self.MIN_SLICE and next_slice[self.MAGIC_OFFSET] >= 2:
            self._cache_next()
            return _LenientBatch(next_slice)
        return super().next_batch(*args, **kwargs)


class _ReadBatch:
    """One batch, its records already read (so a decoding failure surfaces before any is handed out)."""

    __slots__ = (
        "_it",
        "base_offset",
        "crc_ok",
        "is_control_batch",
        "is_transactional",
        "next_offset",
        "producer_id",
        "records",
    )

    def __init__(self, batch: Any) -> None:
        self.crc_ok = batch.validate_crc()
        self.producer_id = getattr(batch, "producer_id", None)
        self.base_offset = getattr(batch, "base_offset", None)
        self.is_control_batch = bool(getattr(batch, "is_control_batch", False))
        self.is_transactional = bool(getattr(batch, "is_transactional", False))
        self.records = list(batch)
        self.next_offset = batch.next_offset
        self._it: Iterator[Any] = iter(self.records)

    def validate_crc(self) -> bool:
        return bool(self.crc_ok)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._it)


class TolerantMemoryRecords:
    def __init__(self, data: bytes) -> None:
        self._size = len(data)
        try:
            self._batches = self._read(_FastMemoryRecords(data))
        except UnicodeDecodeError:
            self._batches = self._read(_LenientMemoryRecords(data))

    @staticmethod
    def _read(records: Any) -> list[_ReadBatch]:
        batches = []
        while records.has_next():
            batch = records.next_batch()
            if batch is None:
                break
            batches.append(_ReadBatch(batch))
        return batches

    def size_in_bytes(self) -> int:
        return self._size

    def has_next(self) -> bool:
        return bool(self._batches)

    def next_batch(self) -> Any:
        return self._batches.pop(0) if self._batches else None


def install() -> None:
    """Idempotent: make every aiokafka consumer in this process read records tolerantly."""
    _fetcher.MemoryRecords = TolerantMemoryRecords
