"""NTB time: every date a person sees is in WITA (Asia/Makassar, UTC+8)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

WITA = ZoneInfo("Asia/Makassar")


def as_wita(moment: datetime) -> datetime:
    """A naive time is read as WITA (how people in NTB write it); an aware one is converted."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=WITA)
    return moment.astimezone(WITA)
