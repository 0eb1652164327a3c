"""Who may act: the roles API keys and page sessions carry.

Dependency-free on purpose: the pure workflow rules of a service name roles without pulling in
the HTTP or database layers.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ORGANIZER = "organizer"
    REGION_OPERATOR = "region_operator"
    DISNAKERTRANS_REVIEWER = "disnakertrans_reviewer"
    BPJS_REVIEWER = "bpjs_reviewer"
    OPERATOR = "operator"
