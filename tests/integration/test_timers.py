"""Durable timers on the real PostgreSQL: exactly once across replicas, moved, cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts import registry
from shared.platform import migrations, timers
from shared.platform.db import create_pool
from shared.platform.outbox import Outbox
from shared.platform.tasks import cancel_and_wait

from .conftest import DSN, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


@pytest.fixture
async def pool(schema_for):
    schema = schema_for("timers")
    pool = await create_pool(DSN, schema, max_size=8)
    async with pool.acquire() as conn:
        await migrations.migrate(conn, schema, migrations.messaging())
        await conn.execute("CREATE TABLE effects (timer_key text NOT NULL, fired_by text NOT NULL)")
    yield pool
    await pool.close()


def wheel(pool, name: str, clock=timers.system_clock) -> timers.TimerWheel:
    w = timers.TimerWheel(pool, Outbox(registry, source="/test"), clock=clock, poll_seconds=0.05)

    @w.handles("reminder")
    async def remind(timer: timers.Timer, ctx: timers.TimerContext) -> None:
        await ctx.conn.execute("INSERT INTO effects VALUES ($1, $2)", timer.key, name)

    return w


async def test_each_due_timer_fires_exactly_once_with_two_replicas(pool):
    """Two wheels racing over 60 due timers produce 60 effects, none doubled."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for i in range(60):
            await timers.schedule(conn, "reminder", f"m1:{i}", now - timedelta(seconds=1), {"i": i})
    fired = await asyncio.gather(wheel(pool, "a").fire_due(), wheel(pool, "b").fire_due())
    assert sum(fired) == 60
    assert await pool.fetchval("SELECT count(*) FROM effects") == 60
    assert await pool.fetchval("SELECT count(DISTINCT timer_key) FROM effects") == 60
    assert await wheel(pool, "c").fire_due() == 0


async def test_future_timers_wait_and_moved_timers_follow_the_new_time(pool):
    """A timer fires only once due; rescheduling moves it; a later clock fires it."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await timers.schedule(conn, "reminder", "m2:3d", now + timedelta(days=3))
        await timers.schedule(conn, "reminder", "m2:3d", now + timedelta(days=5))  # the meeting moved
    assert await wheel(pool, "a").fire_due() == 0
    assert await wheel(pool, "a", clock=lambda: now + timedelta(days=4)).fire_due() == 0
    assert await wheel(pool, "a", clock=lambda: now + timedelta(days=5, seconds=1)).fire_due() == 1


async def test_cancelled_timers_never_fire(pool):
    """Cancelling by key prefix stops every pending timer of that meeting, and only those."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for key in ("m3:3d", "m3:1d", "m4:1d"):
            await timers.schedule(conn, "reminder", key, now - timedelta(seconds=1))
        assert await timers.cancel(conn, "reminder", "m3:") == 2
    assert await wheel(pool, "a").fire_due() == 1
    assert [r["timer_key"] for r in await pool.fetch("SELECT timer_key FROM effects")] == ["m4:1d"]


async def test_failing_handler_leaves_no_effect_and_retries_later(pool):
    """A handler error rolls back its writes, records the error and pushes the timer back."""
    now = datetime.now(UTC)
    w = timers.TimerWheel(pool, Outbox(registry, source="/test"), poll_seconds=0.05, max_attempts=2)

    @w.handles("reminder")
    async def broken(timer, ctx):
        await ctx.conn.execute("INSERT INTO effects VALUES ($1, 'broken')", timer.key)
        raise RuntimeError("template missing")

    async with pool.acquire() as conn:
        await timers.schedule(conn, "reminder", "m5", now - timedelta(seconds=1))
    assert await w.fire_due() == 0
    row = await pool.fetchrow("SELECT attempts, last_error, due_at, fired_at FROM timers WHERE key = 'm5'")
    assert row["attempts"] == 1 and "template missing" in row["last_error"] and row["fired_at"] is None
    assert row["due_at"] > now
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0


async def test_timers_survive_a_restart(pool):
    """A timer written by one process is fired by a wheel started later (state is in PostgreSQL)."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await timers.schedule(conn, "reminder", "m6", now + timedelta(milliseconds=300))
    runner = asyncio.create_task(wheel(pool, "after-restart").run())
    try:
        for _ in range(100):
            if await pool.fetchval("SELECT count(*) FROM effects"):
                break
            await asyncio.sleep(0.05)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert await pool.fetchval("SELECT fired_by FROM effects") == "after-restart"


async def test_an_idle_wheel_sleeps_until_the_next_timer_and_a_sooner_one_wakes_it(pool, schema_for):
    """With a 60 s poll: a timer due in a second fires about then (the wheel slept until it), and a timer
    scheduled for now while the wheel sleeps towards a far one fires at once (its NOTIFY woke the wheel)."""
    schema = schema_for("timers")
    w = timers.TimerWheel(pool, Outbox(registry, source="/test"), poll_seconds=60, schema=schema)
    fired_at: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    @w.handles("reminder")
    async def remind(timer: timers.Timer, ctx: timers.TimerContext) -> None:
        fired_at[timer.key] = loop.time()

    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await timers.schedule(conn, "reminder", "soon", now + timedelta(seconds=1))
        await timers.schedule(conn, "reminder", "far", now + timedelta(days=1))
    started = loop.time()
    task = asyncio.create_task(w.run())
    try:
        await eventually(lambda: _value("soon" in fired_at), timeout=20, interval=0.05)
        assert fired_at["soon"] - started < 15  # not the 60 s poll
        # Asleep now towards the far timer (a day away, so 60 s): wait until it listens, then schedule one due now.
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'", schema))
        scheduled = loop.time()
        async with pool.acquire() as conn:
            await timers.schedule(conn, "reminder", "now", datetime.now(UTC))
        await eventually(lambda: _value("now" in fired_at), timeout=20, interval=0.05)
        assert fired_at["now"] - scheduled < 15
        assert "far" not in fired_at
    finally:
        await cancel_and_wait(task)


async def _value(value):
    return value
