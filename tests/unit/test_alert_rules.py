"""The Prometheus alerting rules under deploy/prometheus: they parse, their expressions are valid
PromQL, each fires on its series (promtool's unit tests) and each has a runbook section.

promtool comes from Debian's prometheus package (`make promtool`, run by `make test`); PROMTOOL
may name another. Without it only the structural checks run and the promtool ones are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
# Metric names the services export (shared/platform/metrics.py, shared/platform/http_telemetry.py, prometheus_client's
# _total suffix for counters) and Prometheus's own `up`.
EXPORTED = {"ntb_consumer_stalled", "ntb_consumer_lag", "ntb_consumer_records_total", "ntb_outbox_oldest_age_seconds",
            "ntb_outbox_set_aside", "ntb_deliveries_total", "up", "http_requests_total"}


def promtool() -> str | None:
    candidates = [os.environ.get("PROMTOOL"), shutil.which("promtool"), str(ROOT / ".local" / "tools" / "promtool")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_rule_is_complete_and_named_once():
    rules = alerts()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)) and len(names) >= 8
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        assert DURATION.fullmatch(rule.get("for", "0s")), rule["alert"]
        used = set(re.findall(r"\b(ntb_[a-z_]+|http_requests_total|up)\b(?=\s*[{(]|\s*[=><)]|\s*$)", rule["expr"]))
        assert used and used <= EXPORTED, (rule["alert"], used)


def test_every_alert_has_a_runbook_section_and_a_rule_test():
    runbook = RUNBOOK.read_text("utf-8")
    anchors = {"#" + re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text("utf-8"))["tests"]
              for t in case["alert_rule_test"]}
    for rule in alerts():
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{rule['alert'].lower()}"
        assert f"#{rule['alert'].lower()}" in anchors, rule["alert"]
        assert rule["alert"] in tested, rule["alert"]


def _run(*args: str) -> subprocess.CompletedProcess:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed (make promtool); structural checks only")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent)


def test_promtool_accepts_the_rules():
    result = _run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_only_after_its_for_period():
    result = _run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_broken_expression(tmp_path):
    """The check can fail: an invalid expression in an otherwise identical file is refused."""
    broken = RULES.read_text("utf-8").replace("ntb_outbox_set_aside > 0", "ntb_outbox_set_aside >", 1)
    (tmp_path / "alerts.yml").write_text(broken, "utf-8")
    result = _run("check", "rules", str(tmp_path / "alerts.yml"))
    assert result.returncode != 0
