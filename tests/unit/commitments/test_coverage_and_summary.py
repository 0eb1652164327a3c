"""Coverage data, the population-proportional estimates and the summary arithmetic."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.commitments import coverage
from services.commitments.settings import CommitmentsSettings
from services.commitments.summary import summary


def test_province_figures_and_target_come_from_data():
    """555,276 of 1.81 M is 30.68% (reported 30.7%); the target is 62.22%; figures flagged unverified."""
    data = coverage.load()
    cov = coverage.province_coverage(data, 0, 0)
    assert cov.baseline_percent == Decimal("30.68") and data.reported_coverage_percent == Decimal("30.7")
    assert cov.target_percent == Decimal("62.22") and not data.verified


def test_region_potential_is_estimated_by_population():
    """Estimates split 1.81 M by population: Lombok Timur (largest) gets most, all flagged estimated."""
    data = coverage.load()
    assert abs(sum(data.region_potential.values()) - 1_810_000) <= 10
    assert max(data.region_potential, key=data.region_potential.get) == "52.03"
    assert all(data.region_potential_estimated.values())


def test_summary_counts_only_submitted_or_later_and_adds_realization():
    """A draft does not count; a submitted 15,000 does; realization is reported against it."""
    rows = [
        {"region_code": "52.04", "status": "submitted", "total_workers": 15_000, "total_rp": 3_024_000_000,
         "worker_months": 180_000, "max_months": 12, "overdue_at": None},
        {"region_code": "52.01", "status": "draft", "total_workers": 9_000, "total_rp": 1, "worker_months": 9,
         "max_months": 1, "overdue_at": None},
    ]
    result = summary(2026, rows, {"52.04": (6_000, 100_800_000)})
    province = result["province"]
    assert province["committed_workers"] == 15_000 and province["committed_budget_display"] == "Rp3.024.000.000"
    assert province["realized_workers"] == 6_000
    assert province["coverage"]["with_commitments_percent"] == "31.51"  # (555,276 + 15,000) / 1.81 M
    sumbawa = next(r for r in result["regions"] if r["region_code"] == "52.04")
    assert sumbawa["realized_percent_of_committed"] == "40.00" and sumbawa["months"] == 12
    assert next(r for r in result["regions"] if r["region_code"] == "52.72")["status"] == "not_requested"


def test_deadline_settings_accept_iso_durations_and_wita_times(monkeypatch):
    """COMMITMENTS_DEADLINE is read as WITA; PT durations work for reminders and the deadline offset."""
    monkeypatch.setenv("COMMITMENTS_DEADLINE_REMINDER_LEADS", '["PT1M", "P7D"]')
    monkeypatch.setenv("COMMITMENTS_DEADLINE_AFTER", "PT10M")
    s = CommitmentsSettings()
    assert s.deadline_reminder_leads == [timedelta(days=7), timedelta(minutes=1)]
    from datetime import UTC, datetime
    assert s.deadline_for(datetime(2026, 1, 1, tzinfo=UTC)).utcoffset() == timedelta(hours=8)
    monkeypatch.setenv("COMMITMENTS_DEADLINE", "2026-01-31T23:59:00")
    assert CommitmentsSettings().deadline_for(datetime(2026, 1, 1, tzinfo=UTC)).isoformat() == "2026-01-31T23:59:00+08:00"
