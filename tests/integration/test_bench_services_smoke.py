"""CI smoke of the benchmarks that run the real services as processes: the Rakor burst, idle, the
full pipeline and growth.

Not timed tests: only that each runs end to end and reports well-formed figures (every e-mail
of every burst and every pipeline cycle accepted; a statement rate and a CPU figure for each
service; growth ratios for B1, B4 and the pipeline).
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


def _run(tmp_path, *args: str, timeout: int = 300) -> tuple[dict, str]:
    out = tmp_path / "bench.json"
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": DSN, "PYTHONPATH": str(ROOT),
                        "NTB_ENV": "development"}
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--scale", "smoke", *args, "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())["results"], proc.stderr


def test_burst_and_idle_smoke_report_their_figures(tmp_path):
    results, stderr = _run(tmp_path, "--only", "BURST,IDLE")
    assert "aiosmtpd" in results["BURST"]
    for kind, burst in results["BURST"].items():
        assert burst["verified"] is True and burst["repetitions"] == 2 and burst["submissions"] == 20, (kind, burst)
        assert 0 < burst["p50_ms"] <= burst["p99_ms"] and burst["p50_ms_until_deliveries_written"] > 0, burst
    idle = results["IDLE"]
    assert set(idle["services"]) == {"invitations", "commitments", "notifications"}
    for service in idle["services"].values():
        assert service["cpu_s_per_min"] >= 0 and service.get("statements_per_s", 0) >= 0
    assert "BURST" in stderr and "IDLE" in stderr  # the table


def _check_cycles(row: dict, cycles: int) -> None:
    """Every cycle's four submitted notices and its return's notices accepted, figures well formed."""
    assert row["verified"] is True and row["cycles"] == cycles, row
    assert row["emails"] == row["submitted_emails"] + row["return_emails"] == 4 * cycles + row["return_emails"], row
    assert row["return_emails"] > 0 and row["cycles_per_s"] > 0, row
    assert 0 < row["p50_ms"] <= row["p99_ms"] and row["p50_ms_until_published"] > 0, row
    assert row["cpu_ms_per_cycle"]["processes"] > 0 and all(r["peak"] > 0 for r in row["rss_mb"].values()), row


def test_pipeline_smoke_reports_the_service_beside_the_raw_two_hop_baseline(tmp_path):
    results, stderr = _run(tmp_path, "--only", "PIPELINE")
    pipeline = results["PIPELINE"]
    assert pipeline["verified"] is True and pipeline["sink"], pipeline
    for phase, cycles in (("saturation", 20), ("half_load", 10)):
        assert set(pipeline[phase]) == {"raw", "service"}, pipeline
        for row in pipeline[phase].values():
            _check_cycles(row, cycles)
    assert set(pipeline["saturation"]["service"]["rss_mb"]) == {"commitments", "notifications"}
    assert set(pipeline["saturation"]["raw"]["rss_mb"]) == {"raw-commitments", "raw-notifications"}
    half_rate = pipeline["vs_raw"]["half_load_rate"]
    assert half_rate == round(pipeline["saturation"]["service"]["cycles_per_s"] / 2, 1), pipeline
    assert all(r["offered_cycles_per_s"] == half_rate for r in pipeline["half_load"].values())
    assert pipeline["vs_raw"]["cycles_per_s_ratio"] > 0 and pipeline["vs_raw"]["half_load_p99_ratio"] > 0
    assert "PIPELI" in stderr  # the table


def test_growth_smoke_reports_a_cost_ratio_and_memory_for_each_bench(tmp_path):
    results, _ = _run(tmp_path, "--only", "GROWTH", "--growth-sizes", "100,200", "--growth-pipeline", "20,40",
                      timeout=600)
    growth = results["GROWTH"]
    assert [r["n"] for r in growth["B1"]["batch"]] == [100, 200] and [r["n"] for r in growth["B4"]] == [100, 200]
    assert [r["cycles"] for r in growth["PIPELINE"]] == [20, 40]
    assert all(r["verified"] for r in [*growth["B1"]["batch"], *growth["B1"]["raw"], *growth["B4"],
                                       *growth["PIPELINE"]]), growth
    summary = growth["summary"]
    for key in ("B1_batch_us_per_event_ratio", "B4_us_per_event_ratio", "PIPELINE_us_per_cycle_ratio"):
        assert summary[key] > 0, summary
    assert set(summary["PIPELINE_rss_mb"]) == {"20", "40"} or set(summary["PIPELINE_rss_mb"]) == {20, 40}
    assert isinstance(summary["within_limit"], bool)
