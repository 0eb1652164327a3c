"""CI smoke of the benchmarks that run the real services as processes: the Rakor burst and idle.

Not timed tests: only that each runs end to end and reports well-formed figures (every e-mail
of every burst accepted; a statement rate and a CPU figure for each service).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import BOOTSTRAP, DSN, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") != "PLAINTEXT",
    reason="the services are started as the plain stack runs them (deploy/local/services.sh gives each its "
           "own principal on the secured stack)")]


def test_burst_and_idle_smoke_report_their_figures(tmp_path):
    out = tmp_path / "bench.json"
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "PYTHONPATH": str(ROOT),
                        "NTB_ENV": "development"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "smoke", "--only", "BURST,IDLE", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert "aiosmtpd" in results["BURST"]
    for kind, burst in results["BURST"].items():
        assert burst["verified"] is True and burst["repetitions"] == 2 and burst["submissions"] == 20, (kind, burst)
        assert 0 < burst["p50_ms"] <= burst["p99_ms"] and burst["p50_ms_until_deliveries_written"] > 0, burst
    idle = results["IDLE"]
    assert set(idle["services"]) == {"invitations", "commitments", "notifications"}
    for service in idle["services"].values():
        assert service["cpu_s_per_min"] >= 0 and service.get("statements_per_s", 0) >= 0
    assert "BURST" in proc.stderr and "IDLE" in proc.stderr  # the table
