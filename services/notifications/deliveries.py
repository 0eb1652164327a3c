"""The delivery record: one notice to one recipient on one channel, as routing writes it and the sender sends it.

Routing (handlers, the digest) builds it with `status` pending, or failed with the reason;
the store writes it and hands it back leased (`delivery_of`, with `attempts`, `created_at`
and `lease_token`); the channels turn it into an e-mail or a webhook body; the sender marks it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from shared.contracts.notifications import Channel


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: uuid.UUID
    source_event_id: str
    source_event_type: str
    correlation_id: str | None
    recipient_id: str
    recipient_name: str
    channel: Channel
    address: str
    template: str
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    ics: str | None = None
    # The span that handled the event (its sends are children of it), else the event's own.
    traceparent: str | None = None
    status: str = "pending"  # pending | sent | failed
    reason: str | None = None  # why a failed one failed
    attempts: int = 0  # counted when the sender leases it
    created_at: datetime | None = None  # the e-mail's Date header
    lease_token: uuid.UUID | None = None  # the sender's lease, set by the claim

    def failed(self, reason: str) -> Delivery:
        """The same delivery, failed before sending (nothing rendered is kept)."""
        return Delivery(self.delivery_id, self.source_event_id, self.source_event_type, self.correlation_id,
                        self.recipient_id, self.recipient_name, self.channel, self.address, self.template,
                        traceparent=self.traceparent, status="failed", reason=reason)


# The columns of a delivery row that make a `Delivery`, in field order.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Delivery))


def delivery_of(row: Mapping[str, Any]) -> Delivery:
    """The delivery of a `deliveries` row holding `COLUMNS` (the only place a row becomes one)."""
    return Delivery(
        row["delivery_id"], row["source_event_id"], row["source_event_type"], row["correlation_id"],
        row["recipient_id"], row["recipient_name"], Channel(row["channel"]), row["address"], row["template"],
        row["subject"], row["text_body"], row["html_body"], row["ics"], row["traceparent"], row["status"],
        row["reason"], row["attempts"], row["created_at"], row["lease_token"],
    )
