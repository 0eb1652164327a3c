"""Facts published by the notifications service (topic `ntb.notifications.events`, key: recipient id)."""

from __future__ import annotations

import enum
import uuid
from typing import Protocol

from pydantic import AwareDatetime, Field, NonNegativeInt

from shared.contracts.registry import EventPayload, registry
from shared.contracts.topics import NOTIFICATIONS_EVENTS


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class _Addressed(Protocol):
    @property
    def recipient_id(self) -> str: ...


def _recipient_key(payload: _Addressed) -> str:
    return payload.recipient_id


class _Delivery(EventPayload):
    delivery_id: uuid.UUID = Field(description="The delivery record")
    recipient_id: str = Field(description="Directory id of the recipient; the Kafka key")
    channel: Channel = Field(description="email or webhook")
    source_event_id: str = Field(description="The event that caused the notification")
    source_event_type: str = Field(description="Its type")
    attempts: NonNegativeInt = Field(description="Attempts made")
    at: AwareDatetime = Field(description="When the status was reached")


@registry.event("ntb.notifications.delivery.sent.v1", topic=NOTIFICATIONS_EVENTS, key=_recipient_key)
class DeliverySent(_Delivery):
    """The message was accepted by the SMTP server or webhook endpoint."""


@registry.event("ntb.notifications.delivery.failed.v1", topic=NOTIFICATIONS_EVENTS, key=_recipient_key)
class DeliveryFailed(_Delivery):
    """Delivery failed for good (permanent error or retries exhausted)."""

    reason: str = Field(description="Why it failed")
