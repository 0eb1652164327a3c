"""Stopping background tasks so that a stop always finishes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None, recancel_seconds: float = 0.5) -> None:
    """Cancel the tasks and wait until every one has finished, cancelling again as needed.

    On Python 3.11, `asyncio.wait_for` returns the awaited result instead of raising when the
    task is cancelled just as that result arrives (CPython gh-86296, fixed in 3.12). Code built
    on it (aiosmtplib reads every SMTP reply through it; our own polls use it) then carries on
    as if never cancelled, and a task that loops back to a queue or an event waits forever:
    a stop hung that way after a long benchmark run. Cancelling again until the task is done
    makes the stop finish. Outcomes are collected, so nothing is reported as never retrieved.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_seconds)
    for ended in tasks:
        if ended is not None and ended.done() and not ended.cancelled():
            with contextlib.suppress(BaseException):
                ended.exception()
