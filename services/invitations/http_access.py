"""Who may call the HTTP API, and the unit of work each route receives.

Organizer routes take an API key (`unit_of_work(organizer)`, shared.platform.http). RSVP links
carry no key: the signed token in the path is the credential, so the link's routes get a unit
of work acting for the invitation the token names.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, Request

from shared.contracts.roles import Role
from shared.platform.auth import require
from shared.platform.unit_of_work import Actor, UnitOfWork, open_unit_of_work

from . import tokens
from .config import Config
from .schemas import TOKEN
from .store import Store

organizer = require(Role.ORGANIZER)
readers = require(Role.ORGANIZER, Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER, Role.OPERATOR)

# Before a token is checked (the page checks it itself, to answer with a page of its own).
LINK_HOLDER = Actor("rsvp-link")


def runtime(request: Request) -> Any:
    return request.app.state.runtime


def config(request: Request) -> Config:
    """Built once by bootstrap.build from the settings."""
    built: Config = request.app.state.invitations
    return built


def reader(request: Request) -> Store:
    """The store on the pool, for GET routes: each read on a connection of its own, no transaction."""
    return Store(runtime(request).pool)


def invitee(invitation_id: uuid.UUID) -> Actor:
    return Actor(f"invitation:{invitation_id}")


async def token_holder(request: Request, token: str = TOKEN) -> uuid.UUID:
    """The invitation of a genuine, unexpired RSVP token (403 or 410 otherwise)."""
    invitation_id, _ = tokens.verify(config(request).secret, token, runtime(request).clock())
    return invitation_id


def _opened(request: Request, actor: Actor) -> Any:
    rt = runtime(request)
    return open_unit_of_work(rt.pool, rt.outbox, rt.clock(), actor, rt.store)


async def _as_invitee(request: Request,
                      invitation_id: uuid.UUID = Depends(token_holder)) -> AsyncIterator[UnitOfWork[Store]]:
    async with _opened(request, invitee(invitation_id)) as uow:
        yield uow


async def _as_link_holder(request: Request) -> AsyncIterator[UnitOfWork[Store]]:
    async with _opened(request, LINK_HOLDER) as uow:
        yield uow


# Scoped to the route function, as shared.platform.http.unit_of_work: the transaction commits (or
# rolls back on a raised refusal) before the answer is sent.
invitee_unit_of_work: Any = Depends(_as_invitee, scope="function")
link_unit_of_work: Any = Depends(_as_link_holder, scope="function")
