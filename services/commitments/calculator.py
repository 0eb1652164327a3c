"""Contribution arithmetic. Pure: no I/O; rates are passed in.

Money is whole Rupiah (int). Percentages are Decimal. The contribution for one worker
for one month is computed exactly and rounded half up to whole Rupiah once (the sum of
the programmes, not each programme), then multiplied by workers and months, so a line's
total is always workers x months x unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.contracts.commitments import CommitmentBody, CommitmentLine, Programme, Segment
from shared.platform.formatting import format_rupiah

from .rates import RateVersion

HUNDRED = Decimal(100)
# Segments whose scheme is fixed; the others are PPU when a wage is given, else BPU.
BPU_ONLY = {Segment.PEKERJA_RENTAN_BPU}
PPU_ONLY = {Segment.NON_ASN_PPU}
MAX_WORKERS_PER_LINE = 5_000_000   # NTB has ~3.1 M employed people: more is a typo
MAX_WAGE_RP = 1_000_000_000


class CalculationError(ValueError):
    """The submitted figures break a rule; the message names the line and the expected figure."""


def round_rupiah(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class LineFigure:
    scheme: str            # "bpu" or "ppu"
    unit_rp: int           # per worker per month
    total_rp: int          # workers x months x unit_rp
    explanation: str


def scheme_of(line: CommitmentLine) -> str:
    if line.segment in BPU_ONLY:
        return "bpu"
    if line.segment in PPU_ONLY:
        return "ppu"
    return "ppu" if line.wage_rp is not None else "bpu"


def bpu_unit(programmes: set[Programme], rates: RateVersion) -> int:
    """Per worker per month at the lowest income base: JKK + JKM (+ JHT)."""
    if Programme.JP in programmes:
        raise CalculationError("JP is not available to non-wage earners (BPU)")
    r = rates.bpu
    amount = Decimal(r.jkk_rp + r.jkm_rp)
    if Programme.JHT in programmes:
        amount += Decimal(r.lowest_income_base_rp) * r.jht_percent / HUNDRED
    return round_rupiah(amount)


def ppu_unit(programmes: set[Programme], wage_rp: int, risk_class: int, rates: RateVersion) -> int:
    """Per worker per month as % of wage; JP on the wage capped at the JP wage cap."""
    r = rates.ppu
    if risk_class not in r.jkk_percent_by_risk_class:
        raise CalculationError(f"unknown JKK risk class {risk_class}")
    percent = r.jkk_percent_by_risk_class[risk_class] + r.jkm_percent
    if Programme.JHT in programmes:
        percent += r.jht_percent
    amount = Decimal(wage_rp) * percent / HUNDRED
    if Programme.JP in programmes:
        amount += Decimal(min(wage_rp, r.jp_wage_cap_rp)) * r.jp_percent / HUNDRED
    return round_rupiah(amount)


def line_figure(line: CommitmentLine, rates: RateVersion) -> LineFigure:
    programmes = set(line.programmes)
    if not {Programme.JKK, Programme.JKM} <= programmes:
        raise CalculationError("programmes must include jkk and jkm")
    if line.workers > MAX_WORKERS_PER_LINE:
        raise CalculationError(f"workers {line.workers:,} is beyond any NTB figure (max {MAX_WORKERS_PER_LINE:,})")
    scheme = scheme_of(line)
    if scheme == "bpu":
        if line.wage_rp is not None or line.jkk_risk_class is not None:
            raise CalculationError(
                f"segment {line.segment} is BPU: give unit_contribution_rp, not wage_rp/jkk_risk_class")
        unit = bpu_unit(programmes, rates)
        how = f"{line.workers:,} workers x {line.months} months x {format_rupiah(unit)}"
        if line.unit_contribution_rp is None:
            raise CalculationError(
                f"BPU line needs unit_contribution_rp (expected {format_rupiah(unit)} per worker per month)")
    else:
        if line.wage_rp is None or line.jkk_risk_class is None:
            raise CalculationError(f"segment {line.segment} is PPU: give wage_rp and jkk_risk_class")
        if not 0 < line.wage_rp <= MAX_WAGE_RP:
            raise CalculationError(f"wage_rp must be between Rp1 and {format_rupiah(MAX_WAGE_RP)}")
        unit = ppu_unit(programmes, line.wage_rp, line.jkk_risk_class, rates)
        how = (f"{line.workers:,} workers x {line.months} months x {format_rupiah(unit)} "
               f"(wage {format_rupiah(line.wage_rp)}, risk class {line.jkk_risk_class})")
    if line.unit_contribution_rp is not None and line.unit_contribution_rp != unit:
        raise CalculationError(
            f"unit_contribution_rp {format_rupiah(line.unit_contribution_rp)} disagrees with the rates "
            f"(version {rates.version}): expected {format_rupiah(unit)} per worker per month")
    return LineFigure(scheme, unit, line.workers * line.months * unit, how)


@dataclass(frozen=True, slots=True)
class BodyFigures:
    lines: list[LineFigure]
    total_workers: int
    total_rp: int


def check_body(body: CommitmentBody, rates: RateVersion) -> BodyFigures:
    """Recompute every line and the totals; raise CalculationError on the first disagreement."""
    figures = []
    for index, line in enumerate(body.lines, start=1):
        try:
            figure = line_figure(line, rates)
        except CalculationError as exc:
            raise CalculationError(f"line {index}: {exc}") from None
        if line.total_rp != figure.total_rp:
            raise CalculationError(
                f"line {index}: total_rp {format_rupiah(line.total_rp)} disagrees with the calculator: "
                f"expected {format_rupiah(figure.total_rp)} ({figure.explanation})")
        figures.append(figure)
    workers = sum(line.workers for line in body.lines)
    total = sum(f.total_rp for f in figures)
    if body.total_workers != workers:
        raise CalculationError(f"total_workers {body.total_workers:,} disagrees with the lines: expected {workers:,}")
    if body.total_rp != total:
        raise CalculationError(
            f"total_rp {format_rupiah(body.total_rp)} disagrees with the lines: expected {format_rupiah(total)}")
    return BodyFigures(figures, workers, total)
