"""What the use cases and the RSVP routes take from the settings, read once at start."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import tokens
from .domain import DelegationPolicy
from .payloads import rsvp_url
from .settings import InvitationsSettings


@dataclass(frozen=True, slots=True)
class Config:
    public_base_url: str  # the RSVP links' base, without a trailing slash
    secret: bytes = field(repr=False)  # signs RSVP links and the page's CSRF tokens; never in a repr or log
    reminder_leads: tuple[str, ...] = ("P3D", "P1D")
    rsvp_closes_before: timedelta = timedelta(hours=12)
    delegation: DelegationPolicy = field(default_factory=DelegationPolicy)

    @classmethod
    def of(cls, settings: InvitationsSettings) -> Config:
        if settings.rsvp_secret is None:  # filled in development, refused at start in production
            raise ValueError("INVITATIONS_RSVP_SECRET is not set")
        return cls(settings.public_base_url, settings.rsvp_secret.get_secret_value().encode(),
                   tuple(settings.reminder_leads), settings.rsvp_closes_before, settings.delegation_policy)

    def link(self, invitation: Mapping[str, Any]) -> str:
        """The signed RSVP link of an invitation row, valid until its current deadline."""
        return rsvp_url(self.public_base_url, self.token(invitation["invitation_id"], invitation["rsvp_expires_at"]))

    def token(self, invitation_id: uuid.UUID, expires_at: datetime) -> str:
        return tokens.issue(self.secret, invitation_id, expires_at)
