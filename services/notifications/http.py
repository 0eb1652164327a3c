"""HTTP: the delivery log (per event, per recipient) and the recipient directory (operators)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool

from shared.platform.auth import Principal, require

from shared.contracts.roles import Role
from shared.contracts.notifications import Channel, DeliveryStatus
from shared.contracts.text import WebUrl, line
from shared.platform.http import api_router, body_limit, error
from shared.platform.logging import get_logger, mask_email, redact_text
from shared.contracts.regions import RegionCode

from . import store

log = get_logger(__name__)
READERS = (Role.OPERATOR, Role.ORGANIZER, Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER)


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

    name: line(200)
    title: line(300, min_length=0) = ""
    role: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$",
                      examples=["disnakertrans_reviewer", "bpjs_staff", "sekda"])
    region_code: RegionCode | None = None
    email: EmailStr | None = None
    webhook_url: WebUrl | None = None
    channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL], min_length=1,
                                    description="Preferred channels")
    muted: list[line(200)] = Field(default_factory=list, max_length=100,
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


def _columns(body: RecipientBody, mandatory: set[str]) -> dict[str, Any]:
    refused = sorted(set(body.muted) & mandatory)
    if refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"mandatory notices cannot be muted: {', '.join(refused)}")
    data = body.model_dump()
    data["channels"] = [c.value for c in body.channels]
    return data


def router(mandatory: set[str]) -> APIRouter:
    api = api_router()

    @api.get("/deliveries", response_model=list[DeliveryView], tags=["deliveries"],
             summary="The delivery log, per event and/or per recipient")
    async def deliveries(
        request: Request,
        event_id: str | None = Query(default=None, max_length=200),
        recipient_id: str | None = Query(default=None, max_length=200),
        status_: DeliveryStatus | None = Query(default=None, alias="status"),
        limit: int = Query(default=100, ge=1, le=1000),
        _: Principal = Depends(require(*READERS)),
    ) -> list[DeliveryView]:
        rows = await store.find_deliveries(request.app.state.runtime.pool, event_id=event_id,
                                           recipient_id=recipient_id, status=status_, limit=limit)
        return [DeliveryView.of(r) for r in rows]

    @api.get("/deliveries/{delivery_id}", response_model=DeliveryView, tags=["deliveries"], summary="One delivery",
             responses=error(404))
    async def delivery(delivery_id: uuid.UUID, request: Request,
                       _: Principal = Depends(require(*READERS))) -> DeliveryView:
        row = await store.get_delivery(request.app.state.runtime.pool, delivery_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
        return DeliveryView.of(row)

    @api.get("/recipients", response_model=list[RecipientView], tags=["recipients"], summary="The directory")
    async def recipients(request: Request, role: str | None = None, region_code: RegionCode | None = None,
                         _: Principal = Depends(require(Role.OPERATOR))) -> list[RecipientView]:
        rows = await store.list_recipients(request.app.state.runtime.pool, role, region_code)
        return [RecipientView.model_validate(dict(r)) for r in rows]

    @api.get("/recipients/{recipient_id}", response_model=RecipientView, tags=["recipients"],
             summary="One recipient", responses=error(404))
    async def recipient(request: Request, recipient_id: str = Path(max_length=100, pattern=RECIPIENT_ID),
                        _: Principal = Depends(require(Role.OPERATOR))) -> RecipientView:
        row = await store.get_recipient(request.app.state.runtime.pool, recipient_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recipient {recipient_id}")
        return RecipientView.model_validate(dict(row))

    @api.post("/recipients", response_model=RecipientView, status_code=status.HTTP_201_CREATED, tags=["recipients"],
              summary="Add a recipient", responses=error(409, 422, e409="The recipient id is taken"),
              openapi_extra=body_limit(32 * 1024))
    async def create(body: NewRecipient, request: Request,
                     principal: Principal = Depends(require(Role.OPERATOR))) -> RecipientView:
        pool = request.app.state.runtime.pool
        if not await store.insert_recipient(pool, _columns(body, mandatory)):
            raise HTTPException(status.HTTP_409_CONFLICT, f"recipient {body.recipient_id} exists")
        log.info("recipient added", recipient_id=body.recipient_id, principal=principal.key_id,
                 email=mask_email(body.email or ""))
        return RecipientView.model_validate(dict(await store.get_recipient(pool, body.recipient_id)))

    @api.put("/recipients/{recipient_id}", response_model=RecipientView, tags=["recipients"],
             summary="Replace a recipient's details and preferences (active=false removes them from routing)",
             responses=error(404, 422), openapi_extra=body_limit(32 * 1024))
    async def replace(body: RecipientBody, request: Request,
                      recipient_id: str = Path(max_length=100, pattern=RECIPIENT_ID),
                      principal: Principal = Depends(require(Role.OPERATOR))) -> RecipientView:
        pool = request.app.state.runtime.pool
        if not await store.update_recipient(pool, recipient_id, _columns(body, mandatory)):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recipient {recipient_id}")
        log.info("recipient updated", recipient_id=recipient_id, principal=principal.key_id)
        return RecipientView.model_validate(dict(await store.get_recipient(pool, recipient_id)))

    return api
