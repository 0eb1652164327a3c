"""Resending failed deliveries: the operator's fix once the cause (an address, a server) is fixed.

A resend puts a `failed` delivery back to `pending`, due at once, its attempts counted from
zero; the sender then sends it like any other. The delivery keeps its id, so the e-mail
keeps its Message-ID and the webhook its Idempotency-Key: a recipient who did get an
earlier copy sees the same message. The address is the one the directory holds now (the
usual fix is correcting it), if it is valid. Each resend is audited (who, when, what it
was) in `delivery_audit` and logged.

Refused (Conflict, 409 over HTTP), with the reason: deliveries already sent, deliveries still pending (the sender
owns them), and deliveries that failed before anything was rendered (an invalid address
or a template error at routing time: there is no message to send again).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.notifications import Channel
from shared.platform.errors import Conflict, NotFound
from shared.platform.logging import get_logger
from shared.platform.unit_of_work import UnitOfWork

from .domain import address_problem
from .store import Store

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    delivery_id: uuid.UUID
    status: str
    reason: str


@dataclass(slots=True)
class ResendResult:
    found: int = 0
    resent: list[uuid.UUID] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def why_not(row: Mapping[str, Any]) -> str | None:
    """Why this delivery cannot be resent, or None."""
    if row["status"] == "sent":
        return "already sent; a delivery that succeeded is not sent again"
    if row["status"] == "pending":
        return "still pending: the sender is trying it (see attempts and next_attempt_at)"
    if not row["rendered"]:
        return f"failed before anything was rendered ({row['reason']}); there is no message to send again"
    return None


def address_for(row: Mapping[str, Any]) -> str:
    """The directory's current address when it is usable, else the one the delivery had."""
    current = row["current_address"]
    if current and address_problem(Channel(row["channel"]), current) is None:
        return current
    return row["address"]


async def resend_one(uow: UnitOfWork[Store], delivery_id: uuid.UUID) -> ResendResult:
    """Resend one failed delivery; NotFound when there is none, Conflict (with why) when it cannot be."""
    result = await _resend(uow, delivery_id=delivery_id)
    if not result.found:
        raise NotFound(f"no delivery {delivery_id}")
    if not result.resent:
        raise Conflict(f"delivery {delivery_id} not resent: {result.refused[0].reason}")
    return result


async def resend_event(uow: UnitOfWork[Store], event_id: str) -> ResendResult:
    """Resend every failed delivery of an event; NotFound without deliveries, Conflict when none can be."""
    result = await _resend(uow, event_id=event_id)
    if not result.found:
        raise NotFound("the event has no deliveries")
    if not result.resent:
        detail = "; ".join(f"{r.delivery_id}: {r.reason}" for r in result.refused[:5]) or "none failed"
        raise Conflict(f"no delivery of the event resent: {detail}")
    return result


async def _resend(uow: UnitOfWork[Store], *, delivery_id: uuid.UUID | None = None,
                  event_id: str | None = None) -> ResendResult:
    result = ResendResult()
    rows = await uow.store.resend_candidates(delivery_id=delivery_id, event_id=event_id)
    result.found = len(rows)
    chosen = []
    for row in rows:
        reason = why_not(row)
        if reason is None:
            chosen.append((row, address_for(row)))
        elif delivery_id is not None or row["status"] == "failed":
            # For a whole event, only failed ones that cannot be resent are worth reporting.
            result.refused.append(Refusal(row["delivery_id"], row["status"], reason))
    role = uow.actor.role.value if uow.actor.role is not None else ""
    resent = await uow.store.resend(chosen, actor=uow.actor.id, role=role)
    result.resent = [row["delivery_id"] for row, _ in chosen if row["delivery_id"] in resent]
    for row, address in chosen:
        if row["delivery_id"] in resent:
            log.info("delivery resent by an operator", delivery_id=str(row["delivery_id"]), principal=uow.actor.id,
                     role=role, attempts_before=row["attempts"], address_changed=address != row["address"])
    return result
