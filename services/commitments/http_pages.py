"""Staff pages of the commitments service: sign-in by a mailed link, and the province dashboard.

Sign-in: a person gives their e-mail; if it is in the staff directory (data/staff.yaml: the same
roles, and the region of a region operator, as the API keys), a random single-use link valid for
`sign_in_link_minutes` is mailed to that address. The page answers the same either way, so it
tells nobody who is in the directory. The link is mailed by this service directly over SMTP, not
through Kafka and the notifications service: the link is a bearer credential, and an event would
keep it in clear in a topic every consumer can read, for the topic's whole retention. The mail is
queued in the link's row and sent with retry (`sign_in_mail`); only the token's SHA-256 is stored.
Opening the link shows a button (a mail scanner that fetches links
does not use it up); pressing it consumes the link once and sets the session cookie (`shared.platform.web_session`).
The dashboard admits the roles `GET /summary` admits, as API keys do.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.platform import labels, web, web_session
from shared.platform.auth import Principal
from shared.platform.logging import get_logger
from shared.platform.wita import as_wita

from . import charts, sign_in_mail
from .store import Store
from .summary import summary as build_summary

log = get_logger(__name__)

PAGES = web.environment("services.commitments")
DASHBOARD_ROLES = tuple(Role)  # those of GET /summary
ROLE_LABELS = {"organizer": "Penyelenggara Rakor", "region_operator": "Operator daerah",
               "disnakertrans_reviewer": "Verifikator Disnakertrans", "bpjs_reviewer": "BPJS Ketenagakerjaan",
               "operator": "Operator sistem"}
STATUS_LABELS = {**labels.COMMITMENT_STATUS, "not_requested": "belum diminta"}


def staff_directory(path: str | None = None) -> dict[str, dict[str, Any]]:
    file = Path(path) if path else Path(__file__).parent / "data" / "staff.yaml"
    entries = yaml.safe_load(file.read_text(encoding="utf-8"))["staff"]
    directory = {}
    for entry in entries:
        role = Role(entry["role"])
        region = entry.get("region_code")
        if (role is Role.REGION_OPERATOR) != bool(region):
            raise ValueError(f"staff entry {entry['email']}: a region operator, and only one, has a region")
        directory[entry["email"].strip().lower()] = {"name": entry["name"], "role": role, "region_code": region}
    return directory


_hash = sign_in_mail.token_hash


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _secret(request: Request) -> bytes:
    return _rt(request).settings.session_secret.get_secret_value().encode()


def _now(request: Request) -> datetime:
    return _rt(request).clock()


def _message(title: str, text: str, status_code: int = 200) -> HTMLResponse:
    return web.render(PAGES, "message.html.j2", status_code=status_code, title=title, text=text)


def session_ended() -> HTMLResponse:
    """A form sent without a live session (expired, signed out, another browser): say so, and how to go on."""
    return _message("Sesi Anda telah berakhir", "Isian belum tersimpan karena sesi masuk Anda telah berakhir "
                    "atau belum dimulai. Silakan masuk kembali dengan tautan yang dikirim ke surel dinas Anda, "
                    "lalu ulangi isian.", 401)


# Where a sign-in may lead back to: the pages a notice links to (and nothing that could leave the site).
_NEXT = re.compile(r"/(?:dasbor|komitmen|tinjauan(?:/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?)")


def next_path(value: str | None) -> str | None:
    return value if value and _NEXT.fullmatch(value) else None


def to_sign_in(request: Request) -> RedirectResponse:
    """A page opened without a session (a notice's link, say): sign in first, then come back to it."""
    back = next_path(request.url.path)
    return RedirectResponse(f"/masuk?lanjut={back}" if back and back != "/dasbor" else "/masuk", status_code=303)


def signed_in(request: Request) -> Principal | None:
    found = web_session.from_request(request, _secret(request))
    return found[0] if found else None


class PageAnswer(Exception):
    """A page's dependency answers with this page instead of running the route (bootstrap registers `answer`)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageAnswer)
    return exc.response


def session(request: Request) -> Principal:
    """The signed-in person a form acts for (`unit_of_work(session)`); without a live session, say so."""
    principal = signed_in(request)
    if principal is None:
        raise PageAnswer(session_ended())
    return principal


def reader(request: Request) -> Store:
    """Pages' reads outside a form's unit of work use the pool."""
    return Store(_rt(request).pool)


pages = web.page_router()


@pages.get("/masuk", response_class=HTMLResponse)
async def sign_in_form(request: Request, lanjut: str = "") -> HTMLResponse:
    return web.render(PAGES, "sign_in.html.j2", sent=False, error="", lanjut=next_path(lanjut) or "",
                      csrf=web.csrf_token(_secret(request), "masuk"))


@pages.post("/masuk", response_class=HTMLResponse)
async def request_link(request: Request) -> HTMLResponse:
    rt = _rt(request)
    try:
        form = await web.read_form(request, ("email", "lanjut"))
        web.check_csrf(_secret(request), "masuk", form.get(web.CSRF_FIELD))
    except web.FormError as exc:
        return web.render(PAGES, "sign_in.html.j2", status_code=400, sent=False, error=str(exc), lanjut="",
                          csrf=web.csrf_token(_secret(request), "masuk"))
    email = form.get("email", "").strip().lower()
    person = request.app.state.staff.get(email) if len(email) <= 254 else None
    if person is not None:
        # Queued in the same row that makes the link valid: a relay down or a restart loses nothing.
        await sign_in_mail.request_link(rt.pool, _secret(request), email, _now(request),
                                        timedelta(minutes=rt.settings.sign_in_link_minutes),
                                        next_path(form.get("lanjut")))
        if request.app.state.sign_in_mailer is not None:
            request.app.state.sign_in_mailer.wake()
        log.info("sign-in link requested", principal=web_session.subject_of(email))
    # The same answer whether or not the address is known: the page reveals nobody.
    return web.render(PAGES, "sign_in.html.j2", sent=True, error="", lanjut="",
                      csrf=web.csrf_token(_secret(request), "masuk"))


def _link_not_valid() -> HTMLResponse:
    return _message("Tautan masuk tidak berlaku", "Tautan ini sudah dipakai, kedaluwarsa, atau tidak "
                    "dikenal. Mintalah tautan baru di halaman Masuk.", 410)


@pages.get("/masuk/{token}", response_class=HTMLResponse)
async def confirm(request: Request, token: str, store: Store = Depends(reader)) -> HTMLResponse:
    row = await store.sign_in_link(_hash(token[:100]))
    if row is None or row["used_at"] is not None or _now(request) >= row["expires_at"]:
        return _link_not_valid()
    return web.render(PAGES, "confirm.html.j2", token=token,
                      csrf=web.csrf_token(_secret(request), "tautan:" + _hash(token)))


@pages.post("/masuk/{token}", response_class=HTMLResponse)
async def consume(request: Request, token: str, store: Store = Depends(reader)) -> Any:
    rt = _rt(request)
    try:
        form = await web.read_form(request, ())
        web.check_csrf(_secret(request), "tautan:" + _hash(token[:100]), form.get(web.CSRF_FIELD))
    except web.FormError as exc:
        return _message("Belum dapat masuk", str(exc), 400)
    used = await store.use_sign_in_link(_hash(token[:100]), _now(request))
    email = used["email"] if used else None
    person = request.app.state.staff.get(email) if email else None
    if used is None or email is None or person is None:
        return _link_not_valid()
    lifetime = rt.settings.session_hours * 3600
    cookie = web_session.issue(_secret(request), email=email, name=person["name"], role=person["role"],
                               region_code=person["region_code"], lifetime_seconds=lifetime)
    response = RedirectResponse(next_path(used["next_path"]) or "/dasbor", status_code=303)
    web_session.set_cookie(response, cookie, lifetime_seconds=lifetime, development=rt.settings.development)
    log.info("signed in", principal=web_session.subject_of(email), role=person["role"].value)
    return response


@pages.post("/keluar", response_class=HTMLResponse)
async def sign_out(request: Request) -> Any:
    found = web_session.from_request(request, _secret(request))
    try:
        form = await web.read_form(request, ())
        web.check_csrf(_secret(request), found[0].key_id if found else "", form.get(web.CSRF_FIELD))
    except web.FormError as exc:
        return _message("Belum keluar", str(exc), 400)
    response = RedirectResponse("/masuk", status_code=303)
    web_session.clear_cookie(response, development=_rt(request).settings.development)
    return response


@pages.get("/dasbor", response_class=HTMLResponse)
async def dashboard(request: Request, store: Store = Depends(reader)) -> Any:
    principal = signed_in(request)
    if principal is None:
        return to_sign_in(request)
    if principal.role not in DASHBOARD_ROLES:
        return _message("Tidak berwenang", "Peran Anda tidak dapat membuka dasbor ini.", 403)
    fy = _rt(request).settings.fiscal_year
    data = build_summary(fy, await store.list_all(fy), await store.realization_totals(fy))
    names = {code: r.name for code, r in regions().items()}
    moments = [(as_wita(r["submitted_at"]), names.get(r["region_code"], "-")) for r in await store.submission_times(fy)]
    now = _now(request)
    start = min([m for m, _ in moments] + [now - timedelta(days=30)])
    coverage = data["province"]["coverage"]
    return web.render(
        PAGES, "dashboard.html.j2", data=data, principal=principal, now=now,
        role_label=ROLE_LABELS.get(principal.role.value, "-"), status_labels=STATUS_LABELS,
        bars=charts.bars(data["regions"]),
        gauge_committed=charts.gauge(coverage["with_commitments_percent"], coverage["target_percent"],
                                     "Cakupan dengan komitmen"),
        gauge_realized=charts.gauge(coverage["with_realization_percent"], coverage["target_percent"],
                                    "Cakupan terealisasi"),
        timeline=charts.timeline(moments, start, now), submissions=len(moments),
        as_of=date.fromisoformat(coverage["as_of"]),
        csrf=web.csrf_token(_secret(request), principal.key_id))
