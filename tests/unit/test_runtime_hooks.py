"""shared/platform/runtime.py's lifecycle hooks: a background worker is asked to stop, given its grace, then cancelled;
on_stop hooks run after the workers ended, in reverse order."""

import asyncio

from services.notifications.settings import NotificationsSettings
from shared.platform.runtime import Runtime


def runtime() -> Runtime:
    return Runtime(NotificationsSettings(environment="development"), migration_sets=[])


async def test_a_worker_that_stops_when_asked_finishes_its_work_before_the_stop_hooks_run():
    rt, seen, asked = runtime(), [], asyncio.Event()

    async def worker(_rt: Runtime) -> None:
        await asyncio.wait_for(asked.wait(), timeout=30)
        await asyncio.sleep(0.05)  # finishing what is in flight
        seen.append("worker finished")

    async def first(_rt: Runtime) -> None:
        seen.append("first hook")

    async def second(_rt: Runtime) -> None:
        seen.append("second hook")

    rt.background("w", worker, stop=asked.set, grace_seconds=30)
    rt.on_stop(first)
    rt.on_stop(second)
    task = rt._background[0].task = asyncio.create_task(worker(rt))  # noqa: SLF001 - what start() does, without the stack
    await asyncio.sleep(0)
    await rt._stop_background()  # noqa: SLF001 - what stop() does first
    for hook in reversed(rt._on_stop):  # noqa: SLF001 - then the stop hooks
        await hook(rt)
    assert task.done() and not task.cancelled()
    assert seen == ["worker finished", "second hook", "first hook"]
    assert rt.background_task("w") is None


async def test_a_worker_still_busy_after_its_grace_is_cancelled():
    rt, asked = runtime(), []

    async def stubborn(_rt: Runtime) -> None:
        await asyncio.sleep(3600)

    rt.background("w", stubborn, stop=lambda: asked.append(True), grace_seconds=0.1)
    task = rt._background[0].task = asyncio.create_task(stubborn(rt))  # noqa: SLF001 - as start() would
    await asyncio.sleep(0)
    await asyncio.wait_for(rt._stop_background(), timeout=10)  # noqa: SLF001 - as stop() would
    assert asked == [True] and task.cancelled()
