"""The invitee directory: who fills each seat (region x role), from a data file or the API."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator

from shared.contracts.regions import RegionCode
from shared.contracts.text import WebUrl, line_field

from .domain import SEATS


def check_seat_role(role: str) -> str:
    if role not in SEATS:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(SEATS)}")
    return role


class InviteeDetails(BaseModel):
    """How to reach the official holding one seat (the body of PUT /directory/{region}/{role})."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, line_field(200)] = Field(description="Full name as written on letters")
    title: Annotated[str, line_field(300)] = Field(description="Position, e.g. 'Sekretaris Daerah Kabupaten Dompu'")
    email: EmailStr = Field(description="Official e-mail address (usually .go.id)")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[0-9 ()-]{6,40}$",
                              description="WhatsApp-capable phone number, E.164")
    webhook_url: WebUrl | None = Field(default=None, description="Gateway or office-system webhook")


class DirectoryEntry(InviteeDetails):
    region_code: RegionCode = Field(description="Kemendagri code, e.g. 52.01 (5201 accepted)")
    role: str = Field(description="sekda, kepala_bpkad or kepala_disnaker")

    @field_validator("role")
    @classmethod
    def _role_is_a_seat(cls, role: str) -> str:
        return check_seat_role(role)


def parse(raw: Any) -> list[DirectoryEntry]:
    """Entries from a parsed YAML document; ValueError naming the first bad entry."""
    items = (raw or {}).get("invitees") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ValueError("the directory file needs a top-level 'invitees' list")
    entries: list[DirectoryEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        try:
            entry = DirectoryEntry.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"invitee #{index + 1}: {exc.errors()[0]['msg']}") from None
        if (entry.region_code, entry.role) in seen:
            raise ValueError(f"invitee #{index + 1}: {entry.region_code}/{entry.role} appears twice")
        seen.add((entry.region_code, entry.role))
        entries.append(entry)
    return entries


def bundled() -> list[DirectoryEntry]:
    """The directory shipped with the service (services/invitations/data/invitees.yaml)."""
    text = resources.files("services.invitations.data").joinpath("invitees.yaml").read_text("utf-8")
    return parse(yaml.safe_load(text))
