"""HTTP for operators: resend failed deliveries (one, or all of an event) and read a delivery's audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from shared.platform.auth import Principal, require

from shared.contracts.roles import Role
from shared.contracts.notifications import DeliveryStatus
from shared.platform.http import api_router, error

from . import resend as resending
from . import store
from .http import DeliveryView


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


def router() -> APIRouter:
    api = api_router(tags=["deliveries"])

    @api.post("/deliveries/{delivery_id}/resend", response_model=DeliveryView,
              summary="Send a failed delivery again (same Message-ID / Idempotency-Key; audited)",
              responses=error(404, 409, e404="No such delivery",
                                   e409="Sent, still pending, or never rendered: not resent"))
    async def resend_one(delivery_id: uuid.UUID, request: Request,
                         principal: Principal = Depends(require(Role.OPERATOR))) -> DeliveryView:
        pool = request.app.state.runtime.pool
        result = await resending.resend(pool, principal, delivery_id=delivery_id)
        if not result.found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
        if not result.resent:
            raise HTTPException(status.HTTP_409_CONFLICT, f"delivery {delivery_id} not resent: {result.refused[0].reason}")
        return DeliveryView.of(await store.get_delivery(pool, delivery_id))

    @api.post("/deliveries/resend", response_model=ResendView,
              summary="Send every failed delivery of an event again (audited)",
              responses=error(404, 409, e404="The event has no deliveries",
                                   e409="None of its deliveries can be resent"))
    async def resend_event(request: Request, event_id: str = Query(min_length=1, max_length=200),
                           principal: Principal = Depends(require(Role.OPERATOR))) -> ResendView:
        result = await resending.resend(request.app.state.runtime.pool, principal, event_id=event_id)
        if not result.found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the event has no deliveries")
        if not result.resent:
            detail = "; ".join(f"{r.delivery_id}: {r.reason}" for r in result.refused[:5]) or "none failed"
            raise HTTPException(status.HTTP_409_CONFLICT, f"no delivery of the event resent: {detail}")
        return ResendView(event_id=event_id, resent=result.resent,
                          refused=[RefusalView(delivery_id=r.delivery_id, status=r.status, reason=r.reason)
                                   for r in result.refused])

    @api.get("/deliveries/{delivery_id}/audit", response_model=list[AuditEntry],
             summary="Operator actions on a delivery, oldest first", responses=error(404, e404="No such delivery"))
    async def audit(delivery_id: uuid.UUID, request: Request,
                    _: Principal = Depends(require(Role.OPERATOR))) -> list[AuditEntry]:
        pool = request.app.state.runtime.pool
        if await store.get_delivery(pool, delivery_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
        return [AuditEntry.model_validate(dict(r)) for r in await store.delivery_audit(pool, delivery_id)]

    return api
