"""cancel_and_wait: a stop finishes even when a task swallowed its cancellation."""

from __future__ import annotations

import asyncio
import sys

import pytest

from shared.platform.tasks import cancel_and_wait


async def _swallows_one_cancellation(arrived: asyncio.Future[int], started: asyncio.Event) -> None:
    """Awaits a result through wait_for, then loops on an event, like a sender on its queue."""
    started.set()
    await asyncio.wait_for(arrived, timeout=30)
    await asyncio.Event().wait()


async def _cancelled_as_the_result_arrives() -> asyncio.Task[None]:
    arrived: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()
    task = asyncio.create_task(_swallows_one_cancellation(arrived, started))
    await started.wait()
    await asyncio.sleep(0)  # the task is now inside wait_for
    arrived.set_result(1)  # the result and the cancellation land in the same loop turn
    task.cancel()
    return task


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for no longer swallows cancellation")
async def test_one_cancellation_can_be_swallowed_by_wait_for_on_this_python():
    """The race this helper exists for: after one cancel the task is still running."""
    task = await _cancelled_as_the_result_arrives()
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert not done
    await cancel_and_wait(task)


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again_until_it_stops():
    task = await _cancelled_as_the_result_arrives()
    await asyncio.wait_for(cancel_and_wait(task, recancel_seconds=0.05), timeout=5)
    assert task.cancelled()


async def test_finished_failed_and_missing_tasks_are_accepted_and_failures_not_left_unretrieved():
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait(failed, finished, None)
    assert failed.done() and finished.done()
    assert failed._log_traceback is False  # noqa: SLF001 - the exception was retrieved: no "never retrieved" log
