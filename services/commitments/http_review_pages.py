"""Reviewer pages: the queue of what awaits a Disnakertrans or BPJS reviewer, one commitment with its
audit trail, and the forms to verify, return with reasons, or acknowledge.

Signed-in sessions only (`http_pages`); each action goes through `operations.review` in the form's
unit of work, exactly as the
JSON API does, so the workflow's role rules decide (Disnakertrans verifies and returns a submitted
commitment; BPJS acknowledges or returns a verified one), and a region operator sees its own region only.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.platform import labels, web
from shared.platform.auth import Principal
from shared.platform.errors import DomainError, Forbidden, NotFound
from shared.platform.http import unit_of_work
from shared.platform.logging import get_logger
from shared.platform.unit_of_work import UnitOfWork
from shared.platform.wita import as_wita

from . import operations as ops
from .http_pages import PAGES, ROLE_LABELS, _message, _now, _rt, _secret, reader, session, signed_in, to_sign_in
from .store import Store
from .workflow import Action

log = get_logger(__name__)

QUEUE_OF = {Role.DISNAKERTRANS_REVIEWER: ("submitted",), Role.BPJS_REVIEWER: ("verified",)}
ACTIONS_OF = {Role.DISNAKERTRANS_REVIEWER: {"submitted": ("verify", "return")},
              Role.BPJS_REVIEWER: {"verified": ("acknowledge", "return")}}
ACTION_WORDS = {"request": "permintaan dibuka", "resubmit": "disampaikan kembali", "escalate_overdue": "melewati batas waktu",
                "save_draft": "konsep disimpan", "submit": "disampaikan",
                "verify": "diverifikasi", "return": "dikembalikan", "acknowledge": "diterima",
                "withdraw": "ditarik kembali", "extend_deadline": "batas waktu diperpanjang",
                "overdue": "melewati batas waktu"}
DONE = {"verify": "Komitmen telah diverifikasi.", "return": "Komitmen telah dikembalikan untuk perbaikan.",
        "acknowledge": "Komitmen telah diterima."}


def _visible(principal: Principal, region_code: str) -> bool:
    return principal.can_act_for(region_code)


pages = web.page_router()


@pages.get("/tinjauan", response_class=HTMLResponse)
async def queue(request: Request, store: Store = Depends(reader)) -> Any:
    principal = signed_in(request)
    if principal is None:
        return to_sign_in(request)
    rows = [r for r in await store.list_all(_rt(request).settings.fiscal_year) if _visible(principal, r["region_code"])]
    waiting = QUEUE_OF.get(principal.role, ())
    return web.render(PAGES, "queue.html.j2", principal=principal, role_label=ROLE_LABELS.get(principal.role.value, "-"),
                      waiting=[r for r in rows if r["status"] in waiting],
                      others=[r for r in rows if r["status"] not in waiting], names=_names(),
                      status_labels=labels.COMMITMENT_STATUS, now=_now(request))


@pages.get("/tinjauan/{commitment_id}", response_class=HTMLResponse)
async def detail(request: Request, commitment_id: uuid.UUID, selesai: str = "",
                 store: Store = Depends(reader)) -> Any:
    principal = signed_in(request)
    if principal is None:
        return to_sign_in(request)
    return await _detail(request, store, principal, commitment_id, done=DONE.get(selesai, ""))


@pages.post("/tinjauan/{commitment_id}", response_class=HTMLResponse)
async def act(request: Request, commitment_id: uuid.UUID, principal: Principal = Depends(session),
              uow: UnitOfWork[Store] = unit_of_work(session)) -> Any:
    store = uow.store
    try:
        form = await web.read_form(request, ("action", "note", "reasons", "version"))
        web.check_csrf(_secret(request), f"{principal.key_id}:{commitment_id}", form.get(web.CSRF_FIELD))
    except web.FormError as exc:
        return await _detail(request, store, principal, commitment_id, error=str(exc), status_code=400)
    name = form.get("action", "")
    reasons = [r.strip() for r in form.get("reasons", "").split("\n") if r.strip()]
    if name not in ("verify", "return", "acknowledge"):
        return await _detail(request, store, principal, commitment_id, error="Tindakan tidak dikenal.",
                             status_code=400)
    if name == "return" and not reasons:
        return await _detail(request, store, principal, commitment_id, status_code=422,
                             error="Tuliskan alasan pengembalian, satu alasan per baris.")
    if len(reasons) > 20 or any(len(r) > 1000 for r in reasons) or len(form.get("note", "")) > 2000:
        return await _detail(request, store, principal, commitment_id, status_code=422,
                             error="Alasan paling banyak 20 baris, masing-masing 1.000 karakter.")
    details: dict[str, Any] = {"reasons": reasons} if name == "return" else {"note": form.get("note", "")}
    try:
        await ops.review(uow, commitment_id=commitment_id, action=Action(name),
                         expected_version=web.whole_number(form.get("version")), **details)
    except DomainError as exc:  # refused before anything was written: the unit of work commits nothing
        return await _refusal(request, store, principal, commitment_id, exc)
    log.info("commitment reviewed from the page", action=name, commitment_id=str(commitment_id),
             principal=principal.key_id)
    return RedirectResponse(f"/tinjauan/{commitment_id}?selesai={name}", status_code=303)


async def _refusal(request: Request, store: Store, principal: Principal, commitment_id: uuid.UUID,
                   exc: DomainError) -> HTMLResponse:
    if isinstance(exc, NotFound):
        return _message("Komitmen tidak ditemukan", "Komitmen ini tidak ada.", 404)
    if isinstance(exc, Forbidden):
        return await _detail(request, store, principal, commitment_id, status_code=403,
                             error="Peran Anda tidak dapat melakukan tindakan ini.")
    # A conflict (412 for a stale version), said by what it is now: a second click, or a colleague who acted first.
    row = await store.get(commitment_id)
    now_label = labels.label(labels.COMMITMENT_STATUS, row["status"]) if row else "-"
    return await _detail(request, store, principal, commitment_id, status_code=exc.http_status,
                         error=f"Tindakan tidak dilakukan: komitmen kini berstatus \u201c{now_label}\u201d "
                               "(mungkin sudah ditindaklanjuti). Periksa riwayat di bawah.")


def _names() -> dict[str, str]:
    return {code: r.name for code, r in regions().items()}


async def _detail(request: Request, store: Store, principal: Principal, commitment_id: uuid.UUID, *,
                  error: str = "", done: str = "", status_code: int = 200) -> HTMLResponse:
    row = await store.get(commitment_id)
    if row is None or not _visible(principal, row["region_code"]):
        return _message("Komitmen tidak ditemukan", "Komitmen ini tidak ada atau bukan wewenang Anda.", 404)
    trail = [{"at": as_wita(a["at"]), "action": ACTION_WORDS.get(a["action"], "perubahan"),
              "role": ROLE_LABELS.get(a["role"], "sistem"), "to": labels.label(labels.COMMITMENT_STATUS, a["to_status"]),
              "reason": a["reason"]} for a in await store.audit_trail(commitment_id)]
    allowed = ACTIONS_OF.get(principal.role, {}).get(row["status"], ())
    body = row["body"] or {}
    return web.render(
        PAGES, "commitment.html.j2", status_code=status_code, row=row, body=body, region=_names()[row["region_code"]],
        status_label=labels.label(labels.COMMITMENT_STATUS, row["status"]), trail=trail, allowed=allowed,
        error=error, done=done, principal=principal, labels=labels, deadline=as_wita(row["deadline"]),
        csrf=web.csrf_token(_secret(request), f"{principal.key_id}:{commitment_id}"))
