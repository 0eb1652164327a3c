"""The RSVP endpoint: reached from the link in an invitation; the signed token is the only credential."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request

from shared.contracts.common import Contact
from shared.platform.http import api_router, body_limit, error
from shared.platform.unit_of_work import UnitOfWork

from . import commands, domain, http_pages, tokens
from .config import Config
from .http_access import config, invitee_unit_of_work, reader, runtime, token_holder
from .schemas import CREDENTIAL, ERRORS, TOKEN, TOKEN_ERRORS, InvitationView, RsvpBody
from .store import Store

router = api_router(prefix="/rsvp", tags=["rsvp"])


async def _view(store: Store, invitation_id: uuid.UUID) -> InvitationView:
    invitation = await store.get_invitation(invitation_id)
    if invitation is None:
        raise domain.NotFound("no such invitation")
    meeting = await store.get_meeting(invitation["meeting_id"])
    if meeting is None:  # cannot happen (a foreign key, meetings are never deleted): a 404 rather than a crash
        raise domain.NotFound("no such invitation")
    return InvitationView.of(invitation, meeting)


@router.get("/{token}", response_model=InvitationView, summary="The invitation and its current answer",
            responses={k: v for k, v in TOKEN_ERRORS.items() if k != 409}, openapi_extra=dict(CREDENTIAL))
async def show(request: Request, token: str = TOKEN, settings: Config = Depends(config),
               store: Store = Depends(reader)) -> Any:
    if (page := http_pages.redirect_browser(request, token)) is not None:
        return page  # a browser opening a link mailed before the page existed
    invitation_id, _ = tokens.verify(settings.secret, token, runtime(request).clock())
    return await _view(store, invitation_id)


@router.post("/{token}", response_model=InvitationView,
             summary="Accept, decline (with a reason) or delegate to a named representative",
             responses={**TOKEN_ERRORS, 422: ERRORS[422], **error(429)},
             openapi_extra={**CREDENTIAL, **body_limit(16 * 1024)})
async def respond(body: RsvpBody, invitation_id: uuid.UUID = Depends(token_holder),
                  uow: UnitOfWork[Store] = invitee_unit_of_work, settings: Config = Depends(config)) -> InvitationView:
    delegate = Contact(**body.delegate.model_dump()) if body.delegate else None
    await commands.answer(uow, settings, invitation_id, response=body.response, reason=body.reason,
                          delegate=delegate)
    return await _view(uow.store, invitation_id)
