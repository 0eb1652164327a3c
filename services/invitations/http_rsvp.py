"""The RSVP endpoint: reached from the link in an invitation; the signed token is the only credential."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from shared.contracts.common import Contact
from shared.contracts.text import line, paragraph
from shared.platform.http import api_router, body_limit, error
from shared.platform.logging import get_logger
from shared.platform.wita import as_wita

from . import commands, http_pages, store, tokens
from .http import ERRORS, MeetingView, deps, domain_errors, runtime

log = get_logger(__name__)

TOKEN = Path(max_length=tokens.MAX_TOKEN_LENGTH, description="The signed token from the invitation's link")
TOKEN_ERRORS = {
    **error(403, 404, 410, e403="The token is malformed or its signature is invalid",
            e404="The token is genuine but its invitation no longer exists",
            e410="The link expired, the meeting was cancelled, or the invitation was withdrawn"),
    409: ERRORS[409],
}
CREDENTIAL = {"x-credential": "No API key: the signed token in the path is the credential."}


class DelegateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: line(200) = Field(description="The representative's full name")
    title: line(300) = Field(description="Their position")
    email: EmailStr | None = Field(default=None, description="Official e-mail address")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[0-9 ()-]{6,40}$",
                              description="WhatsApp-capable phone number")

    @model_validator(mode="after")
    def _reachable(self) -> DelegateBody:
        if not (self.email or self.phone):
            raise ValueError("give the delegate's e-mail or phone, so the invitation can reach them")
        return self


class RsvpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response: Literal["accepted", "declined", "delegated"]
    reason: paragraph(1000) = Field(default="", description="Required when declining")
    delegate: DelegateBody | None = Field(default=None, description="Required when delegating")


class InvitationView(BaseModel):
    invitation_id: uuid.UUID
    meeting: MeetingView
    region_code: str
    role: str
    name: str
    title: str
    status: str = Field(description="active or withdrawn")
    response: str | None
    reason: str
    responded_at: datetime | None = Field(description="In WITA")
    delegate_invitation_id: uuid.UUID | None
    delegated_from: uuid.UUID | None
    rsvp_expires_at: datetime = Field(description="In WITA")


async def _verified(request: Request, token: str) -> uuid.UUID:
    rt = runtime(request)
    try:
        invitation_id, _ = tokens.verify(rt.settings.rsvp_secret.get_secret_value().encode(), token, rt.clock())
    except tokens.InvalidToken as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except tokens.ExpiredToken as exc:
        raise HTTPException(status.HTTP_410_GONE, str(exc)) from exc
    return invitation_id


async def _view(pool: object, invitation_id: uuid.UUID) -> InvitationView:
    invitation = await store.get_invitation(pool, invitation_id)  # type: ignore[arg-type]
    if invitation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such invitation")
    meeting = await store.get_meeting(pool, invitation["meeting_id"])  # type: ignore[arg-type]
    data = {k: invitation[k] for k in InvitationView.model_fields if k in invitation.keys()}
    data["responded_at"] = as_wita(data["responded_at"]) if data["responded_at"] else None
    data["rsvp_expires_at"] = as_wita(data["rsvp_expires_at"])
    return InvitationView(**data, meeting=MeetingView.of(meeting))


def router() -> APIRouter:
    api = api_router(prefix="/rsvp", tags=["rsvp"])

    @api.get("/{token}", response_model=InvitationView, summary="The invitation and its current answer",
             responses={k: v for k, v in TOKEN_ERRORS.items() if k != 409}, openapi_extra=dict(CREDENTIAL))
    async def show(request: Request, token: str = TOKEN) -> Any:
        if (page := http_pages.redirect_browser(request, token)) is not None:
            return page  # a browser opening a link mailed before the page existed
        return await _view(runtime(request).pool, await _verified(request, token))

    @api.post("/{token}", response_model=InvitationView,
              summary="Accept, decline (with a reason) or delegate to a named representative",
              responses={**TOKEN_ERRORS, 422: ERRORS[422], **error(429)}, openapi_extra={**CREDENTIAL, **body_limit(16 * 1024)})
    async def respond(body: RsvpBody, request: Request, token: str = TOKEN) -> InvitationView:
        invitation_id = await _verified(request, token)
        rt = runtime(request)
        delegate = Contact(**body.delegate.model_dump()) if body.delegate else None
        with domain_errors():
            async with rt.pool.acquire() as conn, conn.transaction():
                await commands.answer(conn, deps(request), invitation_id, response=body.response,
                                      reason=body.reason, delegate=delegate, now=rt.clock())
        return await _view(rt.pool, invitation_id)

    return api
