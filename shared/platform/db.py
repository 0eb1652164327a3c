"""asyncpg pool bound to one service's schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns round-trip as Python objects instead of strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: asyncpg has already rolled back any open
    transaction and dropped its listeners' callbacks (Connection._reset runs before this).

    asyncpg's default reset also sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip and four statements each time, most of an idle
    service's statements and a share of a busy one's. This code leaves none of that state
    behind: advisory locks are transaction-scoped (migrations unlock their session lock in a
    `finally`), cursors live only inside transactions, `listen` below removes its listener
    (asyncpg UNLISTENs the channel) before releasing, and settings are per transaction
    (SET LOCAL) or the connection's own (server_settings, re-applied by migrations as is).
    """


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only the service's own schema (plus public)."""
    await ensure_schema(dsn, schema)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
        # Fail fast on a dead server so handlers back off instead of hanging.
        timeout=10,
        command_timeout=60,
    )


async def ensure_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass  # two replicas racing to create it
    finally:
        await conn.close()


TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    TimeoutError,
)


LISTEN_CHECK_SECONDS = 30.0


async def listen(pool: asyncpg.Pool, channel: str, callback: Callable[[], None], *, retry_seconds: float) -> None:
    """Call `callback` on every NOTIFY on `channel`, until cancelled; reconnects after a failure.

    A wake-up only: callers keep polling as the source of truth, so a lost connection (and
    the notifications sent while it was down) costs latency, never work.
    """
    def on_notify(*_: object) -> None:
        callback()

    while True:
        try:
            conn = await pool.acquire()
        except Exception:  # noqa: BLE001 - the database is down: try again later
            await asyncio.sleep(retry_seconds)
            continue
        try:
            await conn.add_listener(channel, on_notify)
            callback()  # anything committed while we were not listening is picked up now
            # A connection that died without the socket closing (a server host gone, a
            # dropped route) would deliver nothing, silently: a cheap query now and then
            # proves it alive, or fails and listening starts again on a fresh connection.
            checked = asyncio.get_running_loop().time()
            while not conn.is_closed():
                await asyncio.sleep(5)
                if asyncio.get_running_loop().time() - checked >= LISTEN_CHECK_SECONDS:
                    await conn.fetchval("SELECT 1", timeout=10)
                    checked = asyncio.get_running_loop().time()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            await asyncio.sleep(retry_seconds)
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener(channel, on_notify)
            with contextlib.suppress(Exception):
                await pool.release(conn)
