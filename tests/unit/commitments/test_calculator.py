"""The contribution calculator against the figures in the domain brief."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from services.commitments import calculator, rates
from services.commitments.calculator import CalculationError, check_body, line_figure
from shared.contracts.commitments import CommitmentBody, CommitmentLine
from shared.platform.formatting import format_rupiah as rupiah

FY2026 = rates.for_fiscal_year(rates.load(), 2026)


def bpu_line(workers=15_000, months=12, unit=16_800, total=None, programmes=("jkk", "jkm"), **extra):
    total = workers * months * unit if total is None else total
    return CommitmentLine(segment="pekerja_rentan_bpu", programmes=list(programmes), workers=workers, months=months,
                          unit_contribution_rp=unit, total_rp=total, funding_source="apbd_kabupaten_kota", **extra)


def ppu_line(wage, risk=1, programmes=("jkk", "jkm"), workers=1, months=1, total=0, **extra):
    return CommitmentLine(segment="non_asn_ppu", programmes=list(programmes), workers=workers, months=months,
                          wage_rp=wage, jkk_risk_class=risk, total_rp=total, funding_source="apbd_kabupaten_kota",
                          **extra)


def body(*lines, total_workers=None, total_rp=None, **extra):
    return CommitmentBody(region_code="52.04", fiscal_year=2026, budget_stage="murni", signatory_name="Sekda",
                          lines=list(lines), total_workers=sum(line.workers for line in lines) if total_workers is None
                          else total_workers,
                          total_rp=sum(line.total_rp for line in lines) if total_rp is None else total_rp, **extra)


def test_bpu_jkk_jkm_is_16800_per_worker_per_month():
    """BPU JKK Rp10.000 + JKM Rp6.800 at the lowest income base is Rp16.800."""
    assert calculator.bpu_unit({"jkk", "jkm"}, FY2026) == 16_800


def test_bpu_with_jht_adds_two_percent_of_the_base():
    """Optional JHT adds 2% of Rp1.000.000: Rp20.000, so Rp36.800 a month."""
    assert calculator.bpu_unit({"jkk", "jkm", "jht"}, FY2026) == 36_800


def test_fifteen_thousand_workers_for_twelve_months():
    """15,000 BPU workers x 12 months x Rp16.800 = Rp3.024.000.000."""
    figure = line_figure(bpu_line(), FY2026)
    assert figure.total_rp == 3_024_000_000
    assert rupiah(figure.total_rp) == "Rp3.024.000.000"


def test_sumbawa_example_is_exact_not_the_budgeted_round_figure():
    """Sumbawa's 20,000 workers x 3 months is Rp1.008.000.000 exactly (Rp1,08 bn was the budget line)."""
    assert line_figure(bpu_line(workers=20_000, months=3), FY2026).total_rp == 1_008_000_000
    with pytest.raises(CalculationError, match=r"expected Rp1\.008\.000\.000"):
        check_body(body(bpu_line(workers=20_000, months=3, total=1_080_000_000)), FY2026)


def test_ppu_percentages_by_risk_class_and_programme():
    """PPU at a Rp3.000.000 wage, risk class 1: JKK 0.24% + JKM 0.30% = Rp16.200; with JHT and JP Rp277.200."""
    assert calculator.ppu_unit({"jkk", "jkm"}, 3_000_000, 1, FY2026) == 16_200
    assert calculator.ppu_unit({"jkk", "jkm", "jht", "jp"}, 3_000_000, 1, FY2026) == 16_200 + 171_000 + 90_000
    assert calculator.ppu_unit({"jkk", "jkm"}, 3_000_000, 5, FY2026) == 61_200  # 1.74% + 0.30%


def test_jp_uses_the_wage_cap():
    """JP above the cap is 3% of the cap (Rp10.042.300 from March 2024), not of the wage."""
    v2024 = rates.effective_on(rates.load(), date(2024, 6, 1))
    assert v2024.ppu.jp_wage_cap_rp == 10_042_300 and v2024.verified
    jp_only = calculator.ppu_unit({"jkk", "jkm", "jp"}, 20_000_000, 1, v2024) - \
        calculator.ppu_unit({"jkk", "jkm"}, 20_000_000, 1, v2024)
    assert jp_only == 301_269  # 3% of 10.042.300 = 301.269


def test_rounding_is_half_up_per_worker_per_month():
    """0.54% of Rp1.234.567 + 0.30% = Rp10.370,36 -> Rp10.370."""
    assert calculator.ppu_unit({"jkk", "jkm"}, 1_234_567, 2, FY2026) == 10_370
    assert calculator.round_rupiah(Decimal("0.5")) == 1 and calculator.round_rupiah(Decimal("2.5")) == 3


def test_rate_version_is_the_one_effective_at_the_fiscal_year_start():
    """FY2026 uses the latest version effective on 1 January 2026; before any version there are no rates."""
    assert FY2026.effective_from <= date(2026, 1, 1)
    assert all(v.effective_from <= FY2026.effective_from or v.effective_from > date(2026, 1, 1)
               for v in rates.load())
    with pytest.raises(LookupError):
        rates.for_fiscal_year(rates.load(), 2020)


def test_later_jp_caps_are_marked_unverified():
    """Every version after March 2024 is flagged unverified in the data."""
    assert all(not v.verified for v in rates.load() if v.effective_from > date(2024, 3, 1))


def test_stated_unit_that_disagrees_is_refused_with_the_expected_figure():
    """A BPU line claiming Rp16.000 a month is refused naming Rp16.800."""
    with pytest.raises(CalculationError, match=r"expected Rp16\.800"):
        line_figure(bpu_line(unit=16_000), FY2026)


def test_totals_that_do_not_add_up_are_refused():
    """Body totals must equal the sum of the lines (workers and Rupiah)."""
    with pytest.raises(CalculationError, match="total_workers"):
        check_body(body(bpu_line(), total_workers=1), FY2026)
    with pytest.raises(CalculationError, match=r"expected Rp3\.024\.000\.000"):
        check_body(body(bpu_line(), total_rp=3_000_000_000), FY2026)


def test_scheme_rules():
    """JKK+JKM are required, JP is PPU only, PPU needs a wage and risk class, BPU needs its unit."""
    with pytest.raises(CalculationError, match="jkk and jkm"):
        line_figure(bpu_line(programmes=("jkk",)), FY2026)
    with pytest.raises(CalculationError, match="JP"):
        line_figure(bpu_line(programmes=("jkk", "jkm", "jp")), FY2026)
    with pytest.raises(CalculationError, match="wage_rp and jkk_risk_class"):
        line_figure(ppu_line(wage=None), FY2026)
    with pytest.raises(CalculationError, match="unit_contribution_rp"):
        line_figure(bpu_line(unit=None, total=0), FY2026)


def test_absurd_worker_counts_are_refused():
    """More workers in a line than NTB has employed people is refused."""
    with pytest.raises(CalculationError, match="beyond"):
        line_figure(bpu_line(workers=6_000_000), FY2026)


@given(workers=st.integers(1, 5_000_000), months=st.integers(1, 12), jht=st.booleans())
def test_bpu_total_is_workers_times_months_times_unit(workers, months, jht):
    """For any BPU line the total is workers x months x the unit, and the body check accepts it."""
    unit = 36_800 if jht else 16_800
    programmes = ("jkk", "jkm", "jht") if jht else ("jkk", "jkm")
    line = bpu_line(workers=workers, months=months, unit=unit, programmes=programmes)
    assert check_body(body(line), FY2026).total_rp == workers * months * unit


@given(wage=st.integers(1, 100_000_000), risk=st.integers(1, 5), jht=st.booleans(), jp=st.booleans())
def test_ppu_unit_is_monotonic_and_close_to_the_exact_figure(wage, risk, jht, jp):
    """The rounded unit is within half a Rupiah of the exact Decimal figure and never negative."""
    programmes = {"jkk", "jkm"} | ({"jht"} if jht else set()) | ({"jp"} if jp else set())
    r = FY2026.ppu
    pct = r.jkk_percent_by_risk_class[risk] + r.jkm_percent + (r.jht_percent if jht else 0)
    exact = Decimal(wage) * pct / 100 + (Decimal(min(wage, r.jp_wage_cap_rp)) * r.jp_percent / 100 if jp else 0)
    unit = calculator.ppu_unit(programmes, wage, risk, FY2026)
    assert unit >= 0 and abs(Decimal(unit) - exact) <= Decimal("0.5")
