"""HTTP for operators: resend failed deliveries (one, or all of an event) and read a delivery's audit trail."""

from __future__ import annotations

import uuid

from fastapi import Depends, Query

from shared.contracts.roles import Role
from shared.platform.auth import Principal, require
from shared.platform.errors import NotFound
from shared.platform.http import api_router, error, unit_of_work
from shared.platform.unit_of_work import UnitOfWork

from . import resend as resending
from .http import delivery_view, reads
from .schemas import AuditEntry, DeliveryView, RefusalView, ResendView
from .store import Store

api = api_router(tags=["deliveries"])


@api.post("/deliveries/{delivery_id}/resend", response_model=DeliveryView,
          summary="Send a failed delivery again (same Message-ID / Idempotency-Key; audited)",
          responses=error(404, 409, e404="No such delivery",
                          e409="Sent, still pending, or never rendered: not resent"))
async def resend_one(delivery_id: uuid.UUID,
                     uow: UnitOfWork[Store] = unit_of_work(require(Role.OPERATOR))) -> DeliveryView:
    await resending.resend_one(uow, delivery_id)
    return await delivery_view(uow.store, delivery_id)


@api.post("/deliveries/resend", response_model=ResendView,
          summary="Send every failed delivery of an event again (audited)",
          responses=error(404, 409, e404="The event has no deliveries",
                          e409="None of its deliveries can be resent"))
async def resend_event(event_id: str = Query(min_length=1, max_length=200),
                       uow: UnitOfWork[Store] = unit_of_work(require(Role.OPERATOR))) -> ResendView:
    result = await resending.resend_event(uow, event_id)
    return ResendView(event_id=event_id, resent=result.resent,
                      refused=[RefusalView(delivery_id=r.delivery_id, status=r.status, reason=r.reason)
                               for r in result.refused])


@api.get("/deliveries/{delivery_id}/audit", response_model=list[AuditEntry],
         summary="Operator actions on a delivery, oldest first", responses=error(404, e404="No such delivery"))
async def audit(delivery_id: uuid.UUID, _: Principal = Depends(require(Role.OPERATOR)),
                store: Store = Depends(reads)) -> list[AuditEntry]:
    if await store.get_delivery(delivery_id) is None:
        raise NotFound(f"no delivery {delivery_id}")
    return [AuditEntry.model_validate(dict(r)) for r in await store.delivery_audit(delivery_id)]
