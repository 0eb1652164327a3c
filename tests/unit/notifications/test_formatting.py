"""Rupiah, numbers and WITA dates as people in NTB read them."""

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.platform.formatting import format_date, format_number, format_rupiah, format_wita


def test_rupiah_uses_dots_and_no_space():
    """3024000000 becomes Rp3.024.000.000."""
    assert format_rupiah(3_024_000_000) == "Rp3.024.000.000"
    assert format_rupiah(16_800) == "Rp16.800"
    assert format_rupiah(0) == "Rp0"
    assert format_rupiah(-1_500) == "-Rp1.500"


def test_rupiah_refuses_fractions():
    """Money is whole Rupiah: a float is a bug upstream, not something to round."""
    with pytest.raises(TypeError):
        format_rupiah(1.5)  # type: ignore[arg-type]


def test_wita_has_indonesian_day_and_month_names():
    """01:00 UTC on 3 Dec 2026 is Thursday 09.00 WITA."""
    assert format_wita(datetime(2026, 12, 3, 1, 0, tzinfo=UTC)) == "Kamis, 3 Desember 2026 pukul 09.00 WITA"


def test_wita_crosses_the_date_line_from_utc():
    """20:30 UTC on 31 Dec is already 1 January in Mataram."""
    assert format_wita(datetime(2026, 12, 31, 20, 30, tzinfo=UTC)) == "Jumat, 1 Januari 2027 pukul 04.30 WITA"


def test_dates_and_numbers():
    """Plain dates and thousands separators."""
    assert format_date(date(2026, 8, 17)) == "Senin, 17 Agustus 2026"
    assert format_number(1_457_591) == "1.457.591"


def test_meeting_span_names_one_date_when_it_ends_the_same_day():
    """09.00-12.00 WITA on one day reads as one date with both times."""
    from shared.platform.formatting import format_wita_range

    start = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 09.00 WITA
    assert format_wita_range(start, start + timedelta(hours=3)) == "Kamis, 3 Desember 2026 pukul 09.00 WITA s.d. 12.00 WITA"


def test_meeting_span_across_midnight_in_wita_names_both_dates():
    """A meeting ending after midnight WITA shows the end's own date, not just its time."""
    from shared.platform.formatting import format_wita_range

    start = datetime(2026, 11, 26, 14, 15, tzinfo=UTC)  # 22.15 WITA
    assert format_wita_range(start, start + timedelta(hours=2)) == (
        "Kamis, 26 November 2026 pukul 22.15 WITA s.d. Jumat, 27 November 2026 pukul 00.15 WITA"
    )
