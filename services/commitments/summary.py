"""The provincial and per-region summary. Pure: rows in, a JSON-ready dict out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.contracts.commitments import CommitmentStatus
from shared.contracts.regions import PROVINCE_CODE, regions
from shared.platform.formatting import format_rupiah

from . import coverage
from .workflow import COMMITTED


def summary(fiscal_year: int, rows: Sequence[Mapping[str, Any]], realized: Mapping[str, tuple[int, int]],
            data: coverage.CoverageData | None = None) -> dict[str, Any]:
    """Committed figures count once a commitment is submitted (and stay while verified/acknowledged)."""
    data = data or coverage.load()
    by_region = {row["region_code"]: row for row in rows}
    region_items = []
    totals = {"workers": 0, "rp": 0, "worker_months": 0, "realized": 0, "paid": 0, "acknowledged_workers": 0}
    for code, region in regions().items():
        row = by_region.get(code)
        status = CommitmentStatus(row["status"]) if row else None
        counted = status in COMMITTED
        workers = int(row["total_workers"]) if counted and row else 0
        budget = int(row["total_rp"]) if counted and row else 0
        worker_months = int(row["worker_months"]) if counted and row else 0
        realized_workers, paid = realized.get(code, (0, 0))
        potential = data.region_potential[code]
        totals["workers"] += workers
        totals["rp"] += budget
        totals["worker_months"] += worker_months
        totals["realized"] += realized_workers
        totals["paid"] += paid
        if status is CommitmentStatus.ACKNOWLEDGED:
            totals["acknowledged_workers"] += workers
        region_items.append({
            "region_code": code,
            "region_name": region.name,
            "status": status.value if status else "not_requested",
            "overdue": bool(row and row["overdue_at"]),
            "committed_workers": workers,
            "committed_budget_rp": budget,
            "committed_budget_display": format_rupiah(budget),
            "months": int(row["max_months"]) if counted and row else 0,
            "worker_months": worker_months,
            "realized_workers": realized_workers,
            "realized_percent_of_committed": str(coverage.percent(realized_workers, workers)),
            "contributions_paid_rp": paid,
            "potential_participants": potential,
            "potential_participants_estimated": data.region_potential_estimated[code],
            "committed_percent_of_potential": str(coverage.percent(workers, potential)),
            "realized_percent_of_potential": str(coverage.percent(realized_workers, potential)),
        })
    cov = coverage.province_coverage(data, totals["workers"], totals["realized"])
    return {
        "fiscal_year": fiscal_year,
        "province": {
            "code": PROVINCE_CODE,
            "committed_workers": totals["workers"],
            "acknowledged_workers": totals["acknowledged_workers"],
            "committed_budget_rp": totals["rp"],
            "committed_budget_display": format_rupiah(totals["rp"]),
            "worker_months": totals["worker_months"],
            "realized_workers": totals["realized"],
            "contributions_paid_rp": totals["paid"],
            "coverage": {
                "as_of": data.as_of,
                "figures_verified": data.verified,
                "baseline_participants": cov.baseline_participants,
                "potential_participants": cov.potential_participants,
                "baseline_percent": str(cov.baseline_percent),
                "target_percent": str(cov.target_percent),
                "with_commitments_percent": str(cov.with_commitments_percent),
                "with_realization_percent": str(cov.with_realization_percent),
                "workers_still_needed_for_target": cov.workers_needed_for_target,
            },
            "regions_submitted": sum(1 for r in region_items if r["status"] in {s.value for s in COMMITTED}),
            "regions_overdue": sum(1 for r in region_items if r["overdue"]),
        },
        "regions": region_items,
    }
