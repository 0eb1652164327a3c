# ruff: noqa: SLF001  (the subject is aiokafka's private fetcher and our subclass of it)
"""shared.platform.kafka_fetch: the fetch hold follows the fetcher's buffer; aiokafka's shape is pinned."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from shared.platform.kafka_fetch import _BufferAwareFetcher, hold_briefly_while_buffered


def _plain_fetcher(wait_ms: int) -> Any:
    fetcher = object.__new__(Fetcher)  # no broker: only the attributes the hold reads
    fetcher._fetch_max_wait_ms = wait_ms
    fetcher._records = {}
    return fetcher


def test_the_hold_is_short_only_while_records_wait_in_the_buffer():
    fetcher = _plain_fetcher(5000)
    hold_briefly_while_buffered(SimpleNamespace(_fetcher=fetcher), busy_wait_ms=50)
    assert type(fetcher) is _BufferAwareFetcher
    assert fetcher._fetch_max_wait_ms == 5000
    fetcher._records["tp"] = object()
    assert fetcher._fetch_max_wait_ms == 50
    del fetcher._records["tp"]
    assert fetcher._fetch_max_wait_ms == 5000


def test_a_short_configured_hold_is_never_lengthened_and_applying_twice_is_harmless():
    fetcher = _plain_fetcher(20)
    consumer = SimpleNamespace(_fetcher=fetcher)
    hold_briefly_while_buffered(consumer, busy_wait_ms=50)
    hold_briefly_while_buffered(consumer, busy_wait_ms=80)
    fetcher._records["tp"] = object()
    assert fetcher._fetch_max_wait_ms == 20


def test_an_unknown_fetcher_is_refused():
    class Other(Fetcher):
        pass

    with pytest.raises(TypeError):
        hold_briefly_while_buffered(SimpleNamespace(_fetcher=object.__new__(Other)), busy_wait_ms=50)


def test_aiokafka_still_decides_the_hold_where_the_module_expects():
    """If aiokafka moves these, the short hold silently stops working: fail here instead."""
    build = inspect.getsource(Fetcher._get_actions_per_node)
    assert "if tp in self._records" in build  # buffered partitions are left out of the fetch
    assert "self._fetch_max_wait_ms" in build  # the hold is read for each request built
    init = inspect.getsource(Fetcher.__init__)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in init
    assert "self._records = " in init
