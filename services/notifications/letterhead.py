"""Who writes the notices: the letterhead, the signatory and the contact person of every letter.

Shown on every notice (services/notifications/templates/_kop*, _penutup*). An operator's template
folder (NOTIFICATIONS_TEMPLATE_DIR) can override those partials for another signatory.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.platform.wita import as_wita

LETTERHEAD = {
    "government": "PEMERINTAH PROVINSI NUSA TENGGARA BARAT",
    "office": "SEKRETARIAT DAERAH",
    "address": "Jl. Pejanggik No. 12, Mataram 83121, Telepon (0370) 625 270",
    "city": "Mataram",
    "signatory_on_behalf": "a.n. Gubernur Nusa Tenggara Barat",
    "signatory_position": "Sekretaris Daerah Provinsi Nusa Tenggara Barat",
    "contact_name": "Sekretariat Rakor, Biro Pemerintahan Setda Provinsi NTB",
    "contact_phone": "(0370) 625 270 / 0812 3700 0270",
}

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")


def letter_number(meeting_id: str | uuid.UUID, issued: datetime) -> str:
    """'005/5A1C3E/Setda-NTB/XII/2026': classification 005 (invitations), a number fixed by the meeting."""
    local = as_wita(issued)
    serial = uuid.UUID(str(meeting_id)).hex[:6].upper()
    return f"005/{serial}/Setda-NTB/{_ROMAN[local.month - 1]}/{local.year}"
