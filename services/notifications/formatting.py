"""How money and time are shown to people in NTB (kept in shared/formatting.py, used by every page and notice)."""

from shared.formatting import (DAYS, MONTHS, format_date, format_number, format_rupiah,  # noqa: F401
                               format_wita, format_wita_range)
