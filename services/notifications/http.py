"""HTTP: the delivery log (per event, per recipient) and the recipient directory (operators).

Reads go to the pool; writes run in the request's unit of work (`unit_of_work(require(...))`).
The event types that may not be muted come from the routing rules (`app.state.mandatory`).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Path, Query, Request, status

from shared.contracts.notifications import DeliveryStatus
from shared.contracts.regions import RegionCode
from shared.contracts.roles import Role
from shared.platform.auth import Principal, require
from shared.platform.errors import Conflict, Invalid, NotFound
from shared.platform.http import api_router, body_limit, error, unit_of_work
from shared.platform.logging import get_logger, mask_email
from shared.platform.unit_of_work import UnitOfWork

from .schemas import RECIPIENT_ID, DeliveryView, NewRecipient, RecipientBody, RecipientView
from .store import Store

log = get_logger(__name__)
READERS = (Role.OPERATOR, Role.ORGANIZER, Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER)
api = api_router()


def reads(request: Request) -> Store:
    """The store on the pool, for GET routes (no transaction needed)."""
    return Store(request.app.state.runtime.pool)


def mandatory(request: Request) -> frozenset[str]:
    """The event types whose notices cannot be muted (bootstrap sets them from the routing rules)."""
    return request.app.state.mandatory


async def delivery_view(store: Store, delivery_id: uuid.UUID) -> DeliveryView:
    row = await store.get_delivery(delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return DeliveryView.of(row)


async def recipient_view(store: Store, recipient_id: str) -> RecipientView:
    row = await store.get_recipient(recipient_id)
    if row is None:
        raise NotFound(f"no recipient {recipient_id}")
    return RecipientView.model_validate(dict(row))


def columns(body: RecipientBody, mandatory_types: frozenset[str]) -> dict[str, Any]:
    refused = sorted(set(body.muted) & mandatory_types)
    if refused:
        raise Invalid(f"mandatory notices cannot be muted: {', '.join(refused)}")
    data = body.model_dump()
    data["channels"] = [c.value for c in body.channels]
    return data


@api.get("/deliveries", response_model=list[DeliveryView], tags=["deliveries"],
         summary="The delivery log, per event and/or per recipient")
async def deliveries(
    event_id: str | None = Query(default=None, max_length=200),
    recipient_id: str | None = Query(default=None, max_length=200),
    status_: DeliveryStatus | None = Query(default=None, alias="status"),
    limit: int = Query(default=100, ge=1, le=1000),
    _: Principal = Depends(require(*READERS)),
    store: Store = Depends(reads),
) -> list[DeliveryView]:
    rows = await store.find_deliveries(event_id=event_id, recipient_id=recipient_id, status=status_, limit=limit)
    return [DeliveryView.of(r) for r in rows]


@api.get("/deliveries/{delivery_id}", response_model=DeliveryView, tags=["deliveries"], summary="One delivery",
         responses=error(404))
async def delivery(delivery_id: uuid.UUID, _: Principal = Depends(require(*READERS)),
                   store: Store = Depends(reads)) -> DeliveryView:
    return await delivery_view(store, delivery_id)


@api.get("/recipients", response_model=list[RecipientView], tags=["recipients"], summary="The directory")
async def recipients(role: str | None = None, region_code: RegionCode | None = None,
                     _: Principal = Depends(require(Role.OPERATOR)),
                     store: Store = Depends(reads)) -> list[RecipientView]:
    return [RecipientView.model_validate(dict(r)) for r in await store.list_recipients(role, region_code)]


@api.get("/recipients/{recipient_id}", response_model=RecipientView, tags=["recipients"],
         summary="One recipient", responses=error(404))
async def recipient(recipient_id: str = Path(max_length=100, pattern=RECIPIENT_ID),
                    _: Principal = Depends(require(Role.OPERATOR)),
                    store: Store = Depends(reads)) -> RecipientView:
    return await recipient_view(store, recipient_id)


@api.post("/recipients", response_model=RecipientView, status_code=status.HTTP_201_CREATED, tags=["recipients"],
          summary="Add a recipient", responses=error(409, 422, e409="The recipient id is taken"),
          openapi_extra=body_limit(32 * 1024))
async def create(body: NewRecipient, uow: UnitOfWork[Store] = unit_of_work(require(Role.OPERATOR)),
                 mandatory_types: frozenset[str] = Depends(mandatory)) -> RecipientView:
    if not await uow.store.insert_recipient(columns(body, mandatory_types)):
        raise Conflict(f"recipient {body.recipient_id} exists")
    log.info("recipient added", recipient_id=body.recipient_id, principal=uow.actor.id,
             email=mask_email(body.email or ""))
    return await recipient_view(uow.store, body.recipient_id)


@api.put("/recipients/{recipient_id}", response_model=RecipientView, tags=["recipients"],
         summary="Replace a recipient's details and preferences (active=false removes them from routing)",
         responses=error(404, 422), openapi_extra=body_limit(32 * 1024))
async def replace(body: RecipientBody, recipient_id: str = Path(max_length=100, pattern=RECIPIENT_ID),
                  uow: UnitOfWork[Store] = unit_of_work(require(Role.OPERATOR)),
                  mandatory_types: frozenset[str] = Depends(mandatory)) -> RecipientView:
    if not await uow.store.update_recipient(recipient_id, columns(body, mandatory_types)):
        raise NotFound(f"no recipient {recipient_id}")
    log.info("recipient updated", recipient_id=recipient_id, principal=uow.actor.id)
    return await recipient_view(uow.store, recipient_id)
