"""CI smoke of the benchmark runner: it runs end to end at a tiny scale and reports well-formed JSON.

Not a timed test: only the shape of the report and non-zero throughput are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import BOOTSTRAP, DSN, ROOT

pytestmark = [pytest.mark.integration]


def test_runner_smoke_reports_every_benchmark_it_ran(tmp_path):
    """`bench.run --scale smoke --only B1,B2,B3,B4` writes a JSON report with raw and framework figures for each
    (B4: the service, raw and raw pipelined each verified against the SMTP sink's count, CPU and statements
    per e-mail, the idle phase)."""
    out = tmp_path / "bench.json"
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "smoke", "--only", "B1,B2,B3,B4", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=360,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"B1", "B2", "B3", "B4"}
    assert report["machine"]["nproc"] >= 1 and report["machine"]["postgresql"]
    b1 = report["results"]["B1"]
    for variant in ("raw", "single", "batch"):
        assert b1[variant]["events_per_s"] > 0 and b1[variant]["verified"] is True, b1
    assert b1["batch"]["ratio_to_raw"] > 0
    b2 = report["results"]["B2"]
    for variant in ("raw", "single", "batch"):
        assert b2[variant]["pings"] == 20 and 0 < b2[variant]["p50_ms"] <= b2[variant]["p99_ms"], b2
    b3 = report["results"]["B3"]
    assert b3["raw"]["rows_per_s"] > 0 and b3["relay"]["rows_per_s"] > 0 and b3["relay"]["verified"] is True
    b4 = report["results"]["B4"]
    assert b4["verified"] is True and b4["sink"], b4
    for variant in ("raw", "raw_pipelined", "service"):
        assert b4[variant]["events_per_s"] > 0 and b4[variant]["emails"] == 4 * b4[variant]["n"], b4
        assert b4[variant]["cpu_ms_per_email"]["process"] > 0 and b4[variant]["statements_per_email"] > 0, b4
    assert b4["vs_raw"]["events_per_s_ratio"] > 0 and b4["vs_raw_pipelined"]["cpu_per_email_ratio"] > 0
    assert b4["idle"]["seconds"] > 0 and b4["idle"]["statements_per_s"] >= 0
    assert "B1" in proc.stderr and "ratio" in proc.stderr  # the table
