"""Coverage against the regional target. Pure arithmetic plus the loader of data/coverage.yaml."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import yaml

from shared.contracts.regions import regions


@dataclass(frozen=True, slots=True)
class CoverageData:
    participants: int
    potential_participants: int
    target_percent: Decimal
    reported_coverage_percent: Decimal
    as_of: str
    verified: bool
    region_potential: dict[str, int]
    region_potential_estimated: dict[str, bool]


def percent(part: int, whole: int) -> Decimal:
    """Two decimals, half up; 0 when the whole is 0."""
    if whole <= 0:
        return Decimal("0.00")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def split_by_population(total: int, populations: dict[str, int]) -> dict[str, int]:
    """Estimate each region's share of `total` in proportion to population (rounded)."""
    whole = sum(populations.values())
    return {code: int((Decimal(total) * pop / whole).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            for code, pop in populations.items()}


def parse(raw: dict[str, Any], populations: dict[str, int]) -> CoverageData:
    province = raw["province"]
    potential = int(province["potential_participants"])
    known = {str(k): int(v) for k, v in (raw.get("regions") or {}).items()}
    estimates = split_by_population(potential, populations)
    return CoverageData(
        participants=int(province["participants"]),
        potential_participants=potential,
        target_percent=Decimal(str(province["target_percent"])),
        reported_coverage_percent=Decimal(str(province["coverage_percent"])),
        as_of=str(province["as_of"]),
        verified=bool(province.get("verified", False)),
        region_potential={code: known.get(code, estimates[code]) for code in populations},
        region_potential_estimated={code: code not in known for code in populations},
    )


@functools.cache
def load() -> CoverageData:
    text = resources.files("services.commitments.data").joinpath("coverage.yaml").read_text("utf-8")
    return parse(yaml.safe_load(text), {code: r.population for code, r in regions().items()})


@dataclass(frozen=True, slots=True)
class ProvinceCoverage:
    baseline_participants: int
    potential_participants: int
    baseline_percent: Decimal
    target_percent: Decimal
    committed_workers: int
    realized_workers: int
    with_commitments_percent: Decimal
    with_realization_percent: Decimal
    workers_needed_for_target: int


def province_coverage(data: CoverageData, committed_workers: int, realized_workers: int) -> ProvinceCoverage:
    """Coverage if every committed worker were enrolled on top of the baseline, and as realized.

    Assumes committed workers are not yet among the baseline participants (they are new
    enrolments paid from the new budget lines).
    """
    target_participants = int((Decimal(data.potential_participants) * data.target_percent / 100)
                              .quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return ProvinceCoverage(
        baseline_participants=data.participants,
        potential_participants=data.potential_participants,
        baseline_percent=percent(data.participants, data.potential_participants),
        target_percent=data.target_percent,
        committed_workers=committed_workers,
        realized_workers=realized_workers,
        with_commitments_percent=percent(data.participants + committed_workers, data.potential_participants),
        with_realization_percent=percent(data.participants + realized_workers, data.potential_participants),
        workers_needed_for_target=max(0, target_participants - data.participants - committed_workers),
    )
