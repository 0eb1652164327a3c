"""The regency's page: its commitment request, the lines to fill, the calculator's figures, draft,
submit, why it was returned, and resubmit. A signed-in region operator acts for its own region only.

The person types who is covered (segment, programmes, workers, months, wage for wage earners,
funding source); the contribution per worker and the totals come from the calculator
(`calculator.line_figure`, the same rates the API checks against), shown with "Hitung" before
anything is saved. Saving and submitting go through `operations.save_draft` / `operations.submit`
in the form's unit of work, as the JSON API does.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from shared.contracts.commitments import CommitmentBody, CommitmentLine, Programme, Segment
from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.platform import labels, web
from shared.platform.auth import Principal
from shared.platform.errors import DomainError, Invalid, NotFound
from shared.platform.formatting import format_rupiah
from shared.platform.http import unit_of_work
from shared.platform.logging import get_logger
from shared.platform.unit_of_work import UnitOfWork
from shared.platform.wita import as_wita

from . import calculator, operations as ops, rates
from .http_pages import PAGES, PageAnswer, _message, _now, _rt, _secret, reader, session, signed_in, to_sign_in
from .store import Store

log = get_logger(__name__)

LINES = 3
LINE_FIELDS = ("segment", "jht", "jp", "workers", "months", "wage", "risk", "funding")
FIELDS = ("action", "version", "budget_stage", "signatory_name", "legal_basis",
          *(f"l{i}_{f}" for i in range(LINES) for f in LINE_FIELDS))
DONE = {"konsep": "Konsep tersimpan.", "sampaikan": "Komitmen telah disampaikan untuk diverifikasi."}


class FormProblem(ValueError):
    pass


def _int(form: dict[str, str], name: str, label: str, low: int, high: int) -> int:
    value = web.whole_number(form.get(name, "").replace(".", "").strip(), max_digits=12)
    if value is None or not low <= value <= high:
        raise FormProblem(f"{label}: isikan bilangan bulat {low} sampai {format_rupiah(high)[2:]}.")
    return value


def body_of(form: dict[str, str], region_code: str, fiscal_year: int) -> tuple[CommitmentBody, list[Any]]:
    """The commitment the form describes, with the calculator's figures filled in."""
    version = rates.for_fiscal_year(rates.load(), fiscal_year)
    lines, figures = [], []
    for i in range(LINES):
        if not form.get(f"l{i}_segment"):
            continue
        n = i + 1
        try:
            segment = Segment(form[f"l{i}_segment"])
            programmes = [Programme.JKK, Programme.JKM] + [p for p, key in ((Programme.JHT, "jht"), (Programme.JP, "jp"))
                                                            if form.get(f"l{i}_{key}") == "1"]
            draft = dict(segment=segment, programmes=programmes,
                         workers=_int(form, f"l{i}_workers", f"Baris {n}, jumlah pekerja", 1,
                                      calculator.MAX_WORKERS_PER_LINE),
                         months=_int(form, f"l{i}_months", f"Baris {n}, jumlah bulan", 1, 12),
                         funding_source=form.get(f"l{i}_funding", ""), total_rp=0)
            if form.get(f"l{i}_wage"):
                draft |= dict(wage_rp=_int(form, f"l{i}_wage", f"Baris {n}, upah", 1, calculator.MAX_WAGE_RP),
                              jkk_risk_class=_int(form, f"l{i}_risk", f"Baris {n}, kelas risiko JKK", 1, 5))
            probe = CommitmentLine(**draft)
            if calculator.scheme_of(probe) == "bpu":
                probe = CommitmentLine(**draft | {"unit_contribution_rp": calculator.bpu_unit(set(programmes), version)})
            figure = calculator.line_figure(probe, version)
        except FormProblem:
            raise
        except (ValueError, ValidationError, calculator.CalculationError):
            raise FormProblem(f"Baris {n}: periksa segmen, program, sumber dana, dan (untuk penerima upah) upah "
                              "serta kelas risiko JKK.") from None
        lines.append(CommitmentLine(**probe.model_dump() | {"unit_contribution_rp": figure.unit_rp,
                                                          "total_rp": figure.total_rp}))
        figures.append(figure)
    if not lines:
        raise FormProblem("Isikan paling sedikit satu baris rincian.")
    signatory = form.get("signatory_name", "")
    if not signatory or len(signatory) > 200 or "\n" in signatory:
        raise FormProblem("Isikan nama penandatangan (satu baris).")
    try:
        body = CommitmentBody(region_code=region_code, fiscal_year=fiscal_year, budget_stage=form.get("budget_stage", ""),
                              signatory_name=signatory, legal_basis=form.get("legal_basis", "")[:300], lines=lines,
                              total_workers=sum(line.workers for line in lines),
                              total_rp=sum(f.total_rp for f in figures))
    except ValidationError:
        raise FormProblem("Periksa tahap APBD dan dasar hukum.") from None
    return body, figures


def region_operator(principal: Principal = Depends(session)) -> Principal:
    """The region operator a form acts for (`unit_of_work(region_operator)`)."""
    if principal.role is not Role.REGION_OPERATOR:
        raise PageAnswer(_message("Tidak berwenang", "Halaman ini untuk operator daerah.", 403))
    return principal


pages = web.page_router()


@pages.get("/komitmen", response_class=HTMLResponse)
async def show(request: Request, selesai: str = "", store: Store = Depends(reader)) -> Any:
    principal = signed_in(request)
    if principal is None:
        return to_sign_in(request)
    if principal.role is not Role.REGION_OPERATOR or principal.region_code is None:
        return RedirectResponse("/tinjauan", status_code=303)
    return await _page(request, store, principal.region_code, done=DONE.get(selesai, ""))


@pages.post("/komitmen", response_class=HTMLResponse)
async def act(request: Request, principal: Principal = Depends(region_operator),
              uow: UnitOfWork[Store] = unit_of_work(region_operator)) -> Any:
    region, store = principal.region_code or "", uow.store
    try:
        form = await web.read_form(request, FIELDS)
        web.check_csrf(_secret(request), f"{principal.key_id}:komitmen", form.get(web.CSRF_FIELD))
    except web.FormError as exc:
        return await _page(request, store, region, error=str(exc), status_code=400)
    fy = _rt(request).settings.fiscal_year
    try:
        body, figures = body_of(form, region, fy)
    except FormProblem as exc:
        return await _page(request, store, region, error=str(exc), form=form, status_code=422)
    action = form.get("action")
    if action == "hitung":
        return await _page(request, store, region, form=form, figures=figures, body=body)
    version = web.whole_number(form.get("version"))
    try:
        if action == "konsep":
            await ops.save_draft(uow, body=body, fiscal_year=fy, expected_version=version)
        elif action == "sampaikan":
            await ops.submit(uow, region_code=region, body=body, fiscal_year=fy,
                             submission_id=f"page:{region}:{uuid.uuid4()}", channel="http", expected_version=version)
        else:
            return await _page(request, store, region, error="Tindakan tidak dikenal.", form=form, status_code=400)
    except DomainError as exc:  # refused before anything was written: the unit of work commits nothing
        return await _refusal(request, store, region, action, form, exc)
    log.info("commitment saved from the page", action=action, region_code=region, principal=principal.key_id)
    return RedirectResponse(f"/komitmen?selesai={action}", status_code=303)


async def _refusal(request: Request, store: Store, region: str, action: str | None, form: dict[str, str],
                   exc: DomainError) -> HTMLResponse:
    if isinstance(exc, NotFound):
        return await _page(request, store, region, error="Belum ada permintaan komitmen untuk daerah Anda.",
                           status_code=404)
    if isinstance(exc, Invalid):
        return await _page(request, store, region, form=form, status_code=422,
                           error="Angka komitmen tidak sesuai dengan kalkulator iuran; periksa kembali isian.")
    # A conflict (412 for a stale version): said by what the commitment is now.
    return await _page(request, store, region, form=form, status_code=exc.http_status,
                       error=await _why_not_now(request, store, region, action))


async def _why_not_now(request: Request, store: Store, region_code: str, action: str | None) -> str:
    """Why a save or submission meets a commitment that moved on: said by what it is now (a second
    click on "Sampaikan" finds it already submitted, not an error of the person's)."""
    row = await store.get_by_region(region_code, _rt(request).settings.fiscal_year)
    status = row["status"] if row else ""
    if status in ("submitted", "verified", "acknowledged"):
        already = "sudah disampaikan dan menunggu verifikasi" if status == "submitted" else \
            f"sudah {labels.label(labels.COMMITMENT_STATUS, status)}"
        return (f"Komitmen ini {already}; " + ("penyampaian ulang tidak diperlukan." if action == "sampaikan"
                                                else "isiannya tidak dapat diubah lagi."))
    if status == "withdrawn":
        return "Permintaan komitmen ini telah ditarik oleh penyelenggara; hubungi Sekretariat Rakor."
    return "Komitmen telah berubah sejak halaman ini dibuka (mungkin oleh rekan Anda); muat ulang halaman."


def _form_of(body: dict[str, Any] | None) -> dict[str, str]:
    if not body:
        return {}
    form = {"budget_stage": body.get("budget_stage", ""), "signatory_name": body.get("signatory_name", ""),
            "legal_basis": body.get("legal_basis", "")}
    for i, line in enumerate(body.get("lines", [])[:LINES]):
        form |= {f"l{i}_segment": line["segment"], f"l{i}_workers": str(line["workers"]),
                 f"l{i}_months": str(line["months"]), f"l{i}_funding": line["funding_source"],
                 f"l{i}_jht": "1" if "jht" in line["programmes"] else "",
                 f"l{i}_jp": "1" if "jp" in line["programmes"] else "",
                 f"l{i}_wage": str(line.get("wage_rp") or ""), f"l{i}_risk": str(line.get("jkk_risk_class") or "")}
    return form


async def _page(request: Request, store: Store, region_code: str, *, error: str = "", done: str = "",
                form: dict | None = None, figures: list | None = None, body: CommitmentBody | None = None,
                status_code: int = 200) -> HTMLResponse:
    principal = signed_in(request)
    row = await store.get_by_region(region_code, _rt(request).settings.fiscal_year)
    returned = []
    if row is not None and row["status"] == "returned":
        trail = await store.audit_trail(row["commitment_id"])
        last = [a for a in trail if a["action"] == "return"]
        returned = [r for r in (last[-1]["reason"] if last else "").split("; ") if r.strip()]
    return web.render(
        PAGES, "region.html.j2", status_code=status_code, row=row, region=regions()[region_code].name,
        status_label=labels.label(labels.COMMITMENT_STATUS, row["status"]) if row else "",
        deadline=as_wita(row["deadline"]) if row else None, returned=returned, error=error, done=done,
        form=form if form is not None else _form_of(row["body"] if row else None), figures=figures, body=body,
        late=row is not None and row["status"] in ("requested", "draft", "returned") and _now(request) >= row["deadline"],
        labels=labels, lines=range(LINES), editable=row is not None and row["status"] in ("requested", "draft", "returned"),
        csrf=web.csrf_token(_secret(request), f"{principal.key_id}:komitmen") if principal else "")
