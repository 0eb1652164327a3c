"""Server-rendered pages in Bahasa Indonesia: one look for every service, forms that work without JavaScript.

Each service renders its own templates (its own package's `pages/` folder) on top of the shared
layout in shared/platform/web_templates/ (the province's letterhead, inline CSS: the intranet may be offline,
so nothing is ever loaded from elsewhere). Forms are `application/x-www-form-urlencoded`, parsed here
strictly (UTF-8, no duplicate or unknown fields, no control characters, bounded sizes), and carry a
signed CSRF token bound to what the form acts on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.platform.formatting import (
    format_date,
    format_number,
    format_rupiah,
    format_wita as format_wita,  # services import it from here too
    format_wita_range,
)
from shared.platform.http import StrictRoute, api_router

MAX_FORM_BYTES = 16 * 1024
CSRF_FIELD = "csrf"
CSRF_LIFETIME_SECONDS = 4 * 3600  # a person may leave a form open for a while before sending it

# No script, frame, plugin or foreign origin: the pages are complete without them.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the RSVP token is in the path: it must not leak to other sites
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

_DIGITS = re.compile(r"[0-9]{1,12}")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class FormError(ValueError):
    """A form that cannot be what a person sent from our page; the reason is in Indonesian."""


def environment(package: str) -> jinja2.Environment:
    """Templates of `package`/pages over the shared layout; autoescaped, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader(package, "pages"),
                                    jinja2.PackageLoader("shared.platform", "web_templates")]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(wita=format_wita, tanggal=format_date, rentang=format_wita_range, rupiah=format_rupiah,
                       angka=format_number)
    return env


def render(env: jinja2.Environment, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))


async def read_form(request: Request, fields: Iterable[str]) -> dict[str, str]:
    """The fields of a urlencoded form; anything else a browser would not send from our page is refused."""
    allowed = set(fields) | {CSRF_FIELD}
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise FormError("Formulir harus dikirim dari halaman ini.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise FormError("Isian formulir terlalu panjang.")
    try:
        text = raw.decode("ascii")  # a urlencoded body is ASCII; its values are percent-encoded UTF-8
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), encoding="utf-8",
                          errors="strict", max_num_fields=len(allowed))
    except (UnicodeDecodeError, ValueError):
        raise FormError("Isian formulir tidak dapat dibaca.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed or name in form:
            raise FormError("Formulir memuat isian yang tidak dikenal atau berulang.")
        value = value.replace("\r\n", "\n")
        if _CONTROL.search(value):
            raise FormError("Isian formulir memuat karakter yang tidak diizinkan.")
        form[name] = value.strip()
    return form


# ---- refusals of the strict HTTP layer, as pages ------------------------------------------------------

# What the strict layer (shared.platform.http) refuses, in the words of a page; never the request's own values.
_REFUSED = {
    404: ("Halaman tidak ditemukan", "Alamat ini tidak dikenal. Periksa kembali tautan yang Anda buka, "
                                     "atau mulai dari halaman Masuk."),
    405: ("Permintaan tidak dapat diproses", "Halaman ini tidak menerima permintaan semacam itu."),
    413: ("Isian terlalu panjang", "Isian formulir terlalu panjang."),
    414: ("Alamat terlalu panjang", "Alamat halaman terlalu panjang."),
    415: ("Permintaan tidak dapat diproses", "Formulir harus dikirim dari halaman ini."),
    422: ("Permintaan tidak dapat diproses", "Alamat atau isian tidak dapat dibaca. Buka kembali halaman "
                                             "dari tautan atau menu, lalu coba lagi."),
}
_SHARED_PAGES = jinja2.Environment(loader=jinja2.PackageLoader("shared.platform", "web_templates"), autoescape=True,
                                   undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def refused_page(status_code: int) -> HTMLResponse:
    title, text = _REFUSED.get(status_code, _REFUSED[422])
    return render(_SHARED_PAGES, "refused.html.j2", status_code=status_code, title=title, text=text)


class PageRoute(StrictRoute):
    """A page: the strict layer's refusals (unknown or repeated query parameters, a path value of the
    wrong shape) answer with an Indonesian page instead of the API's JSON. A path value that cannot
    be what it names (not a UUID, say) is a page that does not exist: 404."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                on_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
                return refused_page(404 if on_path else 422)
            except HTTPException as exc:
                if 400 <= exc.status_code < 500:
                    return refused_page(exc.status_code)
                raise

        return page


def page_router(**kwargs: Any) -> Any:
    """The router of a service's pages (not in the OpenAPI document; refusals are pages)."""
    router = api_router(include_in_schema=False, **kwargs)
    router.route_class = PageRoute
    return router


def serve_page_errors(app: FastAPI, prefixes: Iterable[str]) -> None:
    """No such page under a page's path (404, 405) and a body over the app's cap (413): an Indonesian
    page there, JSON for the API elsewhere."""
    roots = tuple(f"/{p.strip('/')}" for p in prefixes)
    previous = app.exception_handlers.get(StarletteHTTPException)

    def under_pages(path: str) -> bool:
        return any(path == r or path.startswith(r + "/") for r in roots)

    # The body cap (shared.platform.http.BodySizeLimit) asks this before answering 413 with JSON.
    app.state.page_refusal = lambda path, status: refused_page(status) if under_pages(path) else None

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405) and under_pages(request.url.path):
            return refused_page(exc.status_code)
        if previous is not None:
            answer = previous(request, exc)
            done: Response = await answer if inspect.isawaitable(answer) else answer
            return done
        from fastapi.exception_handlers import http_exception_handler
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, not_found)


# ---- CSRF: a signed token bound to what the form acts on (an invitation, a session) -----------------


def _mac(secret: bytes, subject: str, issued: int) -> str:
    digest = hmac.new(secret, f"csrf.v1.{subject}.{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_token(secret: bytes, subject: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(secret, subject, issued)}"


def check_csrf(secret: bytes, subject: str, token: str | None, now: float | None = None) -> None:
    """Raises FormError unless `token` was made by `csrf_token` for `subject` in the last few hours."""
    issued_text, _, mac = (token or "").partition(".")
    if not _DIGITS.fullmatch(issued_text):  # ASCII digits only: str.isdigit() admits "²", which int() refuses
        raise FormError("Formulir kedaluwarsa atau tidak berasal dari halaman ini; muat ulang halaman.")
    issued = int(issued_text)
    moment = time.time() if now is None else now
    if not (0 <= moment - issued <= CSRF_LIFETIME_SECONDS) or not hmac.compare_digest(
            mac.encode(), _mac(secret, subject, issued).encode()):
        raise FormError("Formulir kedaluwarsa atau tidak berasal dari halaman ini; muat ulang halaman.")


def whole_number(text: str | None, max_digits: int = 9) -> int | None:
    """An ASCII decimal of at most `max_digits` digits, or None (no "²", no "+1", no " 1")."""
    if text is None or not re.fullmatch(rf"[0-9]{{1,{max_digits}}}", text):
        return None
    return int(text)


def wants_html(request: Request) -> bool:
    """A browser following a link asks for text/html first; API clients ask for JSON or anything."""
    accept = request.headers.get("accept", "")
    first = accept.split(",")[0].partition(";")[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")


def labels(mapping: Mapping[str, str], code: str | None, default: str = "-") -> str:
    """The Indonesian label of a code; an unknown code shows as a neutral dash, never as itself."""
    return mapping.get(code or "", default)


def now_label(moment: datetime) -> str:
    return format_wita(moment)
