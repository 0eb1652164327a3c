"""Idle cost: the three real services started, left alone, measured (target: <= 1 PostgreSQL
statement per second and <= 0.1 s of CPU per minute, per service).

Statements come from pg_stat_statements (each service logs in as its own role, bench/services.py),
counted over the window after a warm-up (start-up work done: migrations, topic checks, the
consumer groups' joins). CPU is each process's user + system time from /proc over the same
window. Nothing is sent and nothing polls /readyz (a probe costs one `SELECT 1` when it comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import asyncpg

from .harness import DSN
from .services import NAMES, Services, role_of
from .sinks import start_sink

STATEMENTS = """
SELECT r.rolname AS role, s.query, s.calls
FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
WHERE r.rolname = ANY($1::text[])
"""


async def statements(conn: asyncpg.Connection) -> dict[tuple[str, str], int] | None:
    try:
        rows = await conn.fetch(STATEMENTS, [role_of(n) for n in NAMES])
    except asyncpg.PostgresError:
        return None  # pg_stat_statements not loaded (deploy/local/postgres.sh loads it where shipped)
    return {(r["role"], r["query"]): r["calls"] for r in rows}


async def run_idle(seconds: float, warmup: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`env`: settings for every service (`{SERVICE}_NAME` form, bench/services.py), for an A/B of a setting."""
    conn = await asyncpg.connect(DSN)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        sink = start_sink(record=False)  # nothing is sent; the services only need a server to point at
        services = None
        try:
            services = await Services.start(smtp_port=sink.port, env=env)
            await asyncio.sleep(warmup)
            before = await statements(conn)
            cpu0 = {n: services[n].cpu() for n in NAMES}
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - t0
            after = await statements(conn)
            cpu1 = {n: services[n].cpu() for n in NAMES}
        finally:
            if services is not None:
                services.stop()
                await services.drop()
            sink.stop()
    finally:
        await conn.close()
    out: dict[str, Any] = {"seconds": round(elapsed, 1), "warmup_s": warmup, "services": {}}
    for name in NAMES:
        entry: dict[str, Any] = {"cpu_s_per_min": round((cpu1[name] - cpu0[name]) * 60 / elapsed, 3)}
        if before is not None and after is not None:
            role = role_of(name)
            deltas = {q: after[(r, q)] - before.get((r, q), 0) for (r, q) in after if r == role}
            total = sum(deltas.values())
            entry["statements_per_s"] = round(total / elapsed, 3)
            entry["top_statements"] = [{"calls": c, "query": " ".join(q.split())[:120]}
                                       for q, c in sorted(deltas.items(), key=lambda kv: -kv[1])[:5] if c]
        out["services"][name] = entry
    out["verified"] = before is not None
    out["meets_target"] = all(e["cpu_s_per_min"] <= 0.1 and e.get("statements_per_s", 99) <= 1
                              for e in out["services"].values())
    return out


if __name__ == "__main__":  # python -m bench.idle [seconds]
    import json
    print(json.dumps(asyncio.run(run_idle(float(sys.argv[1]) if len(sys.argv) > 1 else 60, 10)), indent=2))
