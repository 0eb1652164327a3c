"""The RSVP page: what the link in an invitation opens in a browser, in Bahasa Indonesia.

The signed token in the path is the only credential, as for the JSON API (`http_rsvp`), and both
answer through `commands.answer`. The token's signature is checked here but not the expiry written
in it: a meeting moved later keeps the links already mailed working, and the invitation's current
deadline (moved with the meeting) decides. Every state a person can meet (answered, expired,
cancelled, concluded, withdrawn, broken link) gets a page of its own, never a JSON error.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from shared.contracts.common import Contact
from shared.contracts.regions import regions
from shared.platform import web
from shared.platform.errors import DomainError
from shared.platform.logging import get_logger
from shared.platform.unit_of_work import UnitOfWork
from shared.platform.wita import as_wita

from . import commands, domain, tokens
from .config import Config
from .http_access import config, invitee, link_unit_of_work, reader, runtime
from .store import Store

log = get_logger(__name__)

PAGES = web.environment("services.invitations")
FIELDS = ("response", "reason", "delegate_name", "delegate_title", "delegate_email", "delegate_phone")

RESPONSE_LABELS = {"accepted": "Hadir", "declined": "Tidak hadir", "delegated": "Diwakilkan"}
ROLE_LABELS = {"sekda": "Sekretaris Daerah", "kepala_bpkad": "Kepala BPKAD", "kepala_disnaker": "Kepala Disnaker",
               "delegate": "Perwakilan"}

# Why an answer was refused, in the words a person reads (the domain's reasons are in English, for logs).
_REFUSALS: tuple[tuple[type[DomainError], str, str], ...] = (
    (domain.TooSoon, "", "Perwakilan baru saja ditunjuk. Silakan coba lagi beberapa menit lagi."),
    (domain.Gone, "", "Undangan ini tidak berlaku lagi."),
    (domain.Conflict, "started", "Rapat telah dimulai; jawaban tidak dapat diubah lagi."),
    (domain.Conflict, "delegates", "Batas jumlah perwakilan untuk undangan ini telah tercapai. "
                                   "Hubungi Sekretariat Rakor untuk mengganti perwakilan."),
    (DomainError, "reason when declining", "Mohon tuliskan alasan ketidakhadiran."),
    (DomainError, "cannot delegate further", "Perwakilan tidak dapat mewakilkan kembali undangan ini."),
    (DomainError, "yourself", "Perwakilan harus orang lain, bukan penerima undangan sendiri."),
    (DomainError, "official address", "Alamat surel perwakilan harus alamat dinas (.go.id) atau satu domain "
                                      "dengan alamat surel Bapak/Ibu."),
    (DomainError, "name the delegate", "Mohon isi nama, jabatan, dan surel perwakilan."),
)

# StrictRoutes without a declared body: the form is read by `web.read_form`, not as JSON.
router = web.page_router(prefix="/undangan")


def refusal_text(exc: DomainError) -> str:
    message = str(exc).lower()
    for kind, needle, text in _REFUSALS:
        if isinstance(exc, kind) and needle in message:
            return text
    return "Jawaban tidak dapat disimpan. Mohon periksa kembali isian Anda."


def _message(title: str, text: str, status_code: int, **extra: Any) -> HTMLResponse:
    return web.render(PAGES, "message.html.j2", status_code=status_code, title=title, text=text, **extra)


async def _state(store: Store, secret: bytes, token: str) -> tuple[Any, Any] | HTMLResponse:
    """(invitation, meeting) for a genuine link, or the page that explains why there is none."""
    try:
        invitation_id, _ = tokens.verify_signature(secret, token)
    except tokens.InvalidToken:
        return _message("Tautan tidak sah", "Tautan konfirmasi ini tidak dikenali. Pastikan tautan disalin "
                        "utuh dari surel undangan, atau hubungi Sekretariat Rakor.", 403)
    invitation = await store.get_invitation(invitation_id)
    meeting = await store.get_meeting(invitation["meeting_id"]) if invitation is not None else None
    if invitation is None or meeting is None:
        return _message("Undangan tidak ditemukan", "Undangan untuk tautan ini tidak ada lagi. "
                        "Hubungi Sekretariat Rakor bila Bapak/Ibu merasa diundang.", 404)
    return invitation, meeting


def _closed(invitation: Any, meeting: Any, now: Any) -> HTMLResponse | None:
    if meeting["status"] == "cancelled":
        return _message("Rapat dibatalkan", f"{meeting['title']} yang dijadwalkan "
                        f"{web.format_wita(meeting['starts_at'])} dibatalkan.", 410,
                        reason=meeting["cancel_reason"] or "")
    if meeting["status"] == "concluded":
        return _message("Rapat telah selesai", f"{meeting['title']} telah selesai dilaksanakan. "
                        "Konfirmasi kehadiran tidak diperlukan lagi.", 410)
    if invitation["status"] != "active":
        return _message("Undangan tidak berlaku lagi", "Undangan ini telah digantikan: penerima undangan "
                        "mengubah jawabannya atau menunjuk perwakilan lain.", 410)
    if now >= invitation["rsvp_expires_at"] or now >= meeting["starts_at"]:
        return _message("Batas waktu konfirmasi telah lewat", "Konfirmasi kehadiran untuk "
                        f"{meeting['title']} ditutup pada {web.format_wita(invitation['rsvp_expires_at'])}. "
                        "Hubungi Sekretariat Rakor bila ada perubahan.", 410)
    return None


async def _page(store: Store, secret: bytes, token: str, invitation: Any, meeting: Any, *, error: str = "",
                saved: bool = False, form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    delegate = (await store.get_invitation(invitation["delegate_invitation_id"])
                if invitation["delegate_invitation_id"] else None)
    delegated_by = (await store.get_invitation(invitation["delegated_from"])
                    if invitation["delegated_from"] else None)
    region = regions().get(invitation["region_code"])
    return web.render(
        PAGES, "rsvp.html.j2", status_code=status_code, token=token, invitation=invitation, meeting=meeting,
        region_name=region.name if region else "", role_label=web.labels(ROLE_LABELS, invitation["role"]),
        response_label=web.labels(RESPONSE_LABELS, invitation["response"], "Belum dijawab"),
        responded_at=as_wita(invitation["responded_at"]) if invitation["responded_at"] else None,
        delegate=delegate, delegated_by=delegated_by, rescheduled=meeting["sequence"] > 0, error=error,
        saved=saved, form=form or {}, csrf=web.csrf_token(secret, str(invitation["invitation_id"])))


@router.get("/{token}", response_class=HTMLResponse)
async def show(request: Request, token: str, tersimpan: str = Query(default="", max_length=1),
               settings: Config = Depends(config), store: Store = Depends(reader)) -> HTMLResponse:
    found = await _state(store, settings.secret, token[:tokens.MAX_TOKEN_LENGTH + 1])
    if isinstance(found, HTMLResponse):
        return found
    invitation, meeting = found
    closed = _closed(invitation, meeting, runtime(request).clock())
    return closed or await _page(store, settings.secret, token, invitation, meeting, saved=tersimpan == "1")


@router.post("/{token}", response_class=HTMLResponse)
async def respond(request: Request, token: str, settings: Config = Depends(config),
                  uow: UnitOfWork[Store] = link_unit_of_work) -> Any:
    secret, store = settings.secret, uow.store
    found = await _state(store, secret, token[:tokens.MAX_TOKEN_LENGTH + 1])
    if isinstance(found, HTMLResponse):
        return found
    invitation, meeting = found
    closed = _closed(invitation, meeting, uow.now)
    if closed is not None:
        return closed
    try:
        form = await web.read_form(request, FIELDS)
        web.check_csrf(secret, str(invitation["invitation_id"]), form.get(web.CSRF_FIELD))
        response, reason, delegate = _answer_of(form)
    except web.FormError as exc:
        return await _page(store, secret, token, invitation, meeting, error=str(exc), status_code=400)
    except _Invalid as exc:
        return await _page(store, secret, token, invitation, meeting, error=str(exc), form=exc.form,
                           status_code=422)
    try:
        # A savepoint: this route answers a refusal with a page (so the unit of work commits), and a
        # refused answer must still leave nothing behind.
        async with uow.conn.transaction():
            await commands.answer(uow.acting_as(invitee(invitation["invitation_id"])), settings,
                                  invitation["invitation_id"], response=response, reason=reason, delegate=delegate)
    except DomainError as exc:
        log.info("RSVP from the page refused", invitation_id=str(invitation["invitation_id"]),
                 reason=type(exc).__name__)
        fresh = await _state(store, secret, token)
        if isinstance(fresh, HTMLResponse):
            return fresh
        return _closed(*fresh, uow.now) or await _page(store, secret, token, *fresh, error=refusal_text(exc),
                                                       form=form, status_code=exc.http_status)
    # Post/redirect/get: reloading the page does not send the answer again.
    return RedirectResponse(f"/undangan/{token}?tersimpan=1", status_code=303)


class _Invalid(ValueError):
    def __init__(self, message: str, form: dict[str, str]) -> None:
        super().__init__(message)
        self.form = form


def _answer_of(form: dict[str, str]) -> tuple[str, str, Contact | None]:
    response = form.get("response", "")
    if response not in RESPONSE_LABELS:
        raise _Invalid("Mohon pilih salah satu jawaban: hadir, tidak hadir, atau diwakilkan.", form)
    reason = form.get("reason", "") if response == "declined" else ""
    if response == "declined" and not reason:
        raise _Invalid("Mohon tuliskan alasan ketidakhadiran.", form)
    if len(reason) > 1000:
        raise _Invalid("Alasan paling banyak 1.000 karakter.", form)
    if response != "delegated":
        return response, reason, None
    name, title = form.get("delegate_name", ""), form.get("delegate_title", "")
    email, phone = form.get("delegate_email", ""), form.get("delegate_phone", "")
    if not (name and title and email):
        raise _Invalid("Mohon isi nama, jabatan, dan surel perwakilan.", form)
    if "\n" in name + title + email + phone:
        raise _Invalid("Nama, jabatan, surel, dan telepon ditulis dalam satu baris.", form)
    try:
        delegate = Contact(name=name[:201], title=title[:301], email=email, phone=phone or None)
    except ValidationError:
        raise _Invalid("Periksa kembali nama, jabatan, alamat surel, dan nomor telepon perwakilan.", form) from None
    return response, reason, delegate


def redirect_browser(request: Request, token: str) -> RedirectResponse | None:
    """A browser that opens an old `/rsvp/{token}` link is sent to the page."""
    if web.wants_html(request):
        return RedirectResponse(f"/undangan/{token}", status_code=303)
    return None
