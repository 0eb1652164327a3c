"""A consumer's fetch is held long only when it covers every partition.

aiokafka's fetcher keeps one fetch in flight per broker, and it leaves out of that fetch
every partition whose fetched records the application has not taken yet
(`Fetcher._get_actions_per_node`: `if tp in self._records`). The broker holds a fetch up to
its max wait unless a record lands on a partition the fetch covers. So a record that follows
another on the same partition, while such a fetch is held, waits out the whole hold: up to
`consumer_fetch_max_wait_ms` (5 s, chosen for idle CPU). The pipeline bench measured exactly
that tail (docs/performance.md, round 6: submit -> published p99 ~5 s in its slow runs).

`hold_briefly_while_buffered` makes the hold depend on that state. A fetch built while some
partition's records still wait in the fetcher's buffer is held at most `busy_wait_ms`, so the
partition left out rejoins the next fetch soon after the application takes its records. A
fetch built with nothing buffered covers every partition and keeps the long hold: any record
answers it at once. An idle consumer has nothing buffered, so its cost does not change.

This reaches into aiokafka's private fetcher (the only place the hold is decided);
tests/unit/test_kafka_fetch.py pins the shape of aiokafka it relies on.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher


class _BufferAwareFetcher(Fetcher):  # type: ignore[misc]  # aiokafka ships no type hints
    """aiokafka's fetcher whose max wait, read afresh for each FetchRequest, follows its buffer."""

    _idle_wait_ms: int
    _busy_wait_ms: int
    _records: dict[Any, Any]

    @property
    def _fetch_max_wait_ms(self) -> int:
        return self._busy_wait_ms if self._records else self._idle_wait_ms

    @_fetch_max_wait_ms.setter
    def _fetch_max_wait_ms(self, value: int) -> None:
        self._idle_wait_ms = value


def hold_briefly_while_buffered(consumer: AIOKafkaConsumer, busy_wait_ms: int) -> None:
    """Call after `consumer.start()` (which creates the fetcher) and before records flow."""
    fetcher = consumer._fetcher  # noqa: SLF001 - the hold is decided only inside aiokafka's fetcher
    if type(fetcher) is _BufferAwareFetcher:
        fetcher._busy_wait_ms = min(busy_wait_ms, fetcher._idle_wait_ms)  # noqa: SLF001 - ours
        return
    if type(fetcher) is not Fetcher:
        raise TypeError(f"unexpected aiokafka fetcher {type(fetcher)!r}")
    # The base class keeps the hold as a plain attribute; the property takes over from it.
    idle = fetcher.__dict__.pop("_fetch_max_wait_ms")
    fetcher.__class__ = _BufferAwareFetcher
    fetcher._idle_wait_ms = idle  # noqa: SLF001 - our subclass's own state
    fetcher._busy_wait_ms = min(busy_wait_ms, idle)  # noqa: SLF001 - our subclass's own state
