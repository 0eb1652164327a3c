"""Stopping background tasks so that a stop always finishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


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
    for task in tasks:
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()


async def finish_even_if_cancelled(cleanup: Awaitable[T]) -> T:
    """Run a clean-up to its end although the caller is cancelled again meanwhile.

    `cancel_and_wait` cancels a task again every `recancel_seconds` until it is done. A task
    whose `finally` does a graceful stop (marking what it sent, giving back what it holds)
    would have that work cut off by the second cancellation whenever it takes longer, as
    on a loaded machine, and what it meant to record is lost. The clean-up runs as a task of
    its own; further cancellations wait for it. The caller's own CancelledError still goes
    on once the clean-up is done, so the stop finishes.
    """
    task = asyncio.ensure_future(cleanup)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise  # the clean-up itself was cancelled or is finished: nothing left to wait for
