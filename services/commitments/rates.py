"""Versioned, dated contribution rates (data/rates.yaml) and the pick by fiscal year."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class BpuRates:
    lowest_income_base_rp: int
    jkk_rp: int
    jkm_rp: int
    jht_percent: Decimal


@dataclass(frozen=True, slots=True)
class PpuRates:
    jkk_percent_by_risk_class: dict[int, Decimal]
    jkm_percent: Decimal
    jht_percent: Decimal
    jp_percent: Decimal
    jp_wage_cap_rp: int


@dataclass(frozen=True, slots=True)
class RateVersion:
    version: str
    effective_from: date
    verified: bool
    bpu: BpuRates
    ppu: PpuRates


def parse(raw: dict[str, Any]) -> list[RateVersion]:
    """Rate versions from the YAML structure, oldest first."""
    versions = []
    for item in raw["versions"]:
        bpu, ppu = item["bpu"], item["ppu"]
        versions.append(RateVersion(
            version=str(item["version"]),
            effective_from=date.fromisoformat(str(item["effective_from"])),
            verified=bool(item.get("verified", False)),
            bpu=BpuRates(int(bpu["lowest_income_base_rp"]), int(bpu["jkk_rp"]), int(bpu["jkm_rp"]),
                         Decimal(str(bpu["jht_percent"]))),
            ppu=PpuRates({int(k): Decimal(str(v)) for k, v in ppu["jkk_percent_by_risk_class"].items()},
                         Decimal(str(ppu["jkm_percent"])), Decimal(str(ppu["jht_percent"])),
                         Decimal(str(ppu["jp_percent"])), int(ppu["jp_wage_cap_rp"])),
        ))
    return sorted(versions, key=lambda v: v.effective_from)


def effective_on(versions: list[RateVersion], day: date) -> RateVersion:
    """The latest version whose effective_from is on or before `day`."""
    candidates = [v for v in versions if v.effective_from <= day]
    if not candidates:
        raise LookupError(f"no contribution rates effective on {day.isoformat()}")
    return candidates[-1]


def for_fiscal_year(versions: list[RateVersion], fiscal_year: int) -> RateVersion:
    # A budget is drawn up for the year as it starts: later mid-year indexations are
    # the next budget's (or the APBD-Perubahan's) business.
    return effective_on(versions, date(fiscal_year, 1, 1))


@functools.cache
def load() -> list[RateVersion]:
    text = resources.files("services.commitments.data").joinpath("rates.yaml").read_text("utf-8")
    return parse(yaml.safe_load(text))
