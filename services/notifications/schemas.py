"""The notifications API's request and response models."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool

from shared.contracts.notifications import Channel, DeliveryStatus
from shared.contracts.regions import RegionCode
from shared.contracts.text import WebUrl, line_field
from shared.platform.logging import mask_email, redact_text


class DeliveryView(BaseModel):
    delivery_id: uuid.UUID
    source_event_id: str
    source_event_type: str
    correlation_id: str | None
    recipient_id: str
    recipient_name: str
    channel: Channel
    address: str = Field(description="Masked e-mail or the webhook host")
    template: str
    subject: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next")
    last_error: str | None
    reason: str | None = Field(description="Why a failed delivery failed")
    created_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    resends: int = Field(default=0, description="Times an operator sent it again after it failed")

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DeliveryView:
        data = dict(row)
        data["address"] = mask_email(data["address"]) if data["channel"] == "email" else _host(data["address"])
        if data["status"] != "pending":
            data["next_attempt_at"] = None
        for key in ("last_error", "reason"):  # rows written before the sender masked them, too
            if data.get(key):
                data[key] = redact_text(data[key])
        return cls.model_validate(data)


def _host(url: str) -> str:
    return urlsplit(url).hostname or "(invalid)"


RECIPIENT_ID = r"^[a-z0-9][a-z0-9._-]{0,99}$"


class RecipientBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, line_field(200)]
    title: Annotated[str, line_field(300, min_length=0)] = ""
    role: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$",
                      examples=["disnakertrans_reviewer", "bpjs_staff", "sekda"])
    region_code: RegionCode | None = None
    email: EmailStr | None = None
    webhook_url: WebUrl | None = None
    channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL], min_length=1,
                                    description="Preferred channels")
    muted: list[Annotated[str, line_field(200)]] = Field(default_factory=list, max_length=100,
                                   description="Event types not wanted (mandatory ones excepted)")
    active: StrictBool = True


class NewRecipient(RecipientBody):
    recipient_id: str = Field(min_length=1, max_length=100, pattern=RECIPIENT_ID)


class RecipientView(NewRecipient):
    model_config = ConfigDict(extra="ignore")
    email: str | None = None
    webhook_url: str | None = None
    created_at: datetime
    updated_at: datetime


class RefusalView(BaseModel):
    delivery_id: uuid.UUID
    status: DeliveryStatus
    reason: str


class ResendView(BaseModel):
    event_id: str
    resent: list[uuid.UUID] = Field(description="Deliveries put back to pending, due now")
    refused: list[RefusalView] = Field(description="Failed deliveries of the event that cannot be resent, and why")


class AuditEntry(BaseModel):
    at: datetime
    actor: str = Field(description="The API key id that acted")
    actor_role: str
    action: str
    from_status: DeliveryStatus
    to_status: DeliveryStatus
    attempts_before: int
    reason_before: str | None
