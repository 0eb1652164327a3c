"""Who may call the HTTP API, and the unit of work each route receives.

Organizer routes take an API key (`unit_of_work(organizer)`, shared.platform.http). RSVP links
carry no key: the signed token in the path is the credential, so the link's routes get a unit
of work acting for the invitation the token names.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request

from shared.contracts.roles import Role
from shared.platform.auth import require
from shared.platform.http import unit_of_work
from shared.platform.unit_of_work import Actor

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


async def _invitee_of_token(invitation_id: uuid.UUID = Depends(token_holder)) -> Actor:
    return invitee(invitation_id)


def _link_holder() -> Actor:
    return LINK_HOLDER


# The request's unit of work (shared.platform.http.unit_of_work) acting for the invitation the token
# names, or, for the page that checks the token itself, for the link's holder.
invitee_unit_of_work: Any = unit_of_work(_invitee_of_token)
link_unit_of_work: Any = unit_of_work(_link_holder)
