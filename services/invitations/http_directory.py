"""HTTP entrypoints for the invitee directory (organizers only)."""

from __future__ import annotations

from fastapi import Depends, Query

from shared.contracts.regions import normalize_region_code
from shared.platform.auth import Principal
from shared.platform.http import api_router, body_limit, unit_of_work
from shared.platform.unit_of_work import UnitOfWork

from . import commands, directory, domain
from .http_access import organizer, reader
from .schemas import DirectoryEntryView, ImportResult
from .store import Store

router = api_router(prefix="/directory", tags=["invitee directory"])


def _seat(region_code: str, role: str) -> tuple[str, str]:
    try:
        return normalize_region_code(region_code), directory.check_seat_role(role)
    except ValueError as exc:
        raise domain.Invalid(str(exc)) from None


@router.post("/import", response_model=ImportResult,
             summary="Load the directory shipped with the service (data/invitees.yaml)")
async def import_bundled(replace: bool = Query(default=False, description="Overwrite seats edited through the API"),
                         uow: UnitOfWork[Store] = unit_of_work(organizer)) -> ImportResult:
    entries = directory.bundled()
    written = await commands.import_directory(uow, entries, replace=replace)
    return ImportResult(written=written, kept=len(entries) - written)


@router.get("", response_model=list[DirectoryEntryView], summary="Every seat's official")
async def list_all(_: Principal = Depends(organizer), store: Store = Depends(reader)) -> list[DirectoryEntryView]:
    return [DirectoryEntryView.of(r) for r in await store.list_invitees()]


@router.get("/{region_code}/{role}", response_model=DirectoryEntryView, summary="One seat's official",
            responses={404: {"description": "Seat not in the directory"},
                       422: {"description": "Unknown region or role"}})
async def get_one(region_code: str, role: str, _: Principal = Depends(organizer),
                  store: Store = Depends(reader)) -> DirectoryEntryView:
    code, seat = _seat(region_code, role)
    row = await store.get_invitee(code, seat)
    if row is None:
        raise domain.NotFound(f"no {seat} for {code} in the directory")
    return DirectoryEntryView.of(row)


@router.put("/{region_code}/{role}", response_model=DirectoryEntryView,
            summary="Set a seat's official (used for invitations issued from now on)",
            responses={422: {"description": "Unknown region or role, or invalid details"}},
            openapi_extra=body_limit(16 * 1024))
async def put_one(region_code: str, role: str, body: directory.InviteeDetails,
                  uow: UnitOfWork[Store] = unit_of_work(organizer)) -> DirectoryEntryView:
    code, seat = _seat(region_code, role)
    return DirectoryEntryView.of(await commands.set_invitee(uow, code, seat, body))
