"""How money and time are shown to people in NTB: Rupiah with dots, WITA with Indonesian names."""

from __future__ import annotations

from datetime import date, datetime

from shared.platform.wita import as_wita

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")


def format_rupiah(amount: int) -> str:
    """3024000000 -> 'Rp3.024.000.000' (whole Rupiah; a negative amount keeps its sign)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"Rupiah amounts are whole integers, got {amount!r}")
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{abs(amount):,}".replace(",", ".")


def format_number(value: int) -> str:
    """15000 -> '15.000' (Indonesian thousands separator)."""
    return f"{value:,}".replace(",", ".")


def format_date(value: date | datetime) -> str:
    """'Kamis, 3 Desember 2026' (a datetime is converted to WITA first)."""
    day = as_wita(value).date() if isinstance(value, datetime) else value
    return f"{DAYS[day.weekday()]}, {day.day} {MONTHS[day.month - 1]} {day.year}"


def format_wita(moment: datetime) -> str:
    """'Kamis, 3 Desember 2026 pukul 09.00 WITA'."""
    local = as_wita(moment)
    return f"{format_date(local)} pukul {local:%H.%M} WITA"


def format_wita_range(start: datetime, end: datetime) -> str:
    """'Kamis, 3 Desember 2026 pukul 09.00 WITA s.d. 12.00 WITA'; both dates when it ends on another day."""
    first, last = as_wita(start), as_wita(end)
    if first.date() == last.date():
        return f"{format_wita(first)} s.d. {last:%H.%M} WITA"
    return f"{format_wita(first)} s.d. {format_wita(last)}"
