"""HTTP entrypoints for the invitee directory (organizers only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from shared.platform.auth import Principal
from shared.platform.http import api_router, body_limit
from shared.platform.logging import get_logger
from shared.contracts.regions import normalize_region_code

from . import directory, store
from .http import organizer, runtime

log = get_logger(__name__)


class DirectoryEntryView(directory.InviteeDetails):
    region_code: str
    role: str
    updated_at: datetime
    updated_by: str


class ImportResult(BaseModel):
    written: int = Field(description="Seats inserted (or replaced, with replace=true)")
    kept: int = Field(description="Seats already present and left as edited")


def _seat(region_code: str, role: str) -> tuple[str, str]:
    try:
        return normalize_region_code(region_code), directory.check_seat_role(role)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


def _view(row: object) -> DirectoryEntryView:
    return DirectoryEntryView.model_validate(dict(row))  # type: ignore[call-overload]


def router() -> APIRouter:
    api = api_router(prefix="/directory", tags=["invitee directory"])

    @api.post("/import", response_model=ImportResult,
              summary="Load the directory shipped with the service (data/invitees.yaml)")
    async def import_bundled(request: Request, replace: bool = Query(
            default=False, description="Overwrite seats edited through the API"),
            principal: Principal = Depends(organizer)) -> ImportResult:
        entries = directory.bundled()
        written = 0
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            for entry in entries:
                written += await store.put_invitee(conn, entry.model_dump(), updated_by=principal.key_id,
                                                   overwrite=replace)
        log.info("directory imported", written=written, principal=principal.key_id)
        return ImportResult(written=written, kept=len(entries) - written)

    @api.get("", response_model=list[DirectoryEntryView], summary="Every seat's official")
    async def list_all(request: Request, _: Principal = Depends(organizer)) -> list[DirectoryEntryView]:
        return [_view(r) for r in await store.list_invitees(runtime(request).pool)]

    @api.get("/{region_code}/{role}", response_model=DirectoryEntryView, summary="One seat's official",
             responses={404: {"description": "Seat not in the directory"}, 422: {"description": "Unknown region or role"}})
    async def get_one(region_code: str, role: str, request: Request,
                      _: Principal = Depends(organizer)) -> DirectoryEntryView:
        code, seat = _seat(region_code, role)
        row = await store.get_invitee(runtime(request).pool, code, seat)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {seat} for {code} in the directory")
        return _view(row)

    @api.put("/{region_code}/{role}", response_model=DirectoryEntryView,
             summary="Set a seat's official (used for invitations issued from now on)",
             responses={422: {"description": "Unknown region or role, or invalid details"}},
             openapi_extra=body_limit(16 * 1024))
    async def put_one(region_code: str, role: str, body: directory.InviteeDetails, request: Request,
                      principal: Principal = Depends(organizer)) -> DirectoryEntryView:
        code, seat = _seat(region_code, role)
        pool = runtime(request).pool
        await store.put_invitee(pool, {**body.model_dump(), "region_code": code, "role": seat},
                                updated_by=principal.key_id)
        log.info("directory entry set", region_code=code, role=seat, principal=principal.key_id)
        return _view(await store.get_invitee(pool, code, seat))

    return api
