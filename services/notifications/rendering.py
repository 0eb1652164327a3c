"""Rendering notices from Jinja2 templates in Bahasa Indonesia.

StrictUndefined turns any missing value into an error: a broken template fails loudly
and its delivery is recorded as failed; a half-filled message is never sent.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import markupsafe

from shared.platform import labels
from shared.platform.formatting import format_date, format_number, format_rupiah, format_wita, format_wita_range

from .ics import safe_uri
from .letterhead import LETTERHEAD, letter_number

# What an invitee's answer says, as a verb phrase ("X menyatakan akan hadir dalam <rapat>").
STATEMENTS = {"accepted": "menyatakan akan hadir dalam", "declined": "menyatakan tidak dapat hadir dalam",
              "delegated": "menugaskan perwakilan untuk menghadiri"}
# Letters: the templates of a meeting's letters carry a letter number and a subject line.
LETTER_SUBJECTS = {"invitation_issued": "Undangan Rapat Koordinasi", "meeting_rescheduled": "Perubahan Jadwal Rapat",
                   "meeting_cancelled": "Pembatalan Rapat", "reminder_due": "Pengingat Rapat Koordinasi"}


class TemplateFailure(Exception):
    """The template could not be rendered; nothing may be sent from it."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def _moment(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _day(value: date | datetime | str) -> date | datetime:
    if isinstance(value, str):
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    return value


def _time_only(value: datetime | str) -> str:
    return format_wita(_moment(value)).split(" pukul ")[1].removesuffix(" WITA")


def make_environment(override_dir: str | None = None, *,
                     pages_base_url: str = "http://127.0.0.1:8002") -> jinja2.Environment:
    """Templates shipped with the service; an operator's folder, if set, overrides them by name."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("services.notifications", "templates")]
    if override_dir:
        loaders.insert(0, jinja2.FileSystemLoader(str(Path(override_dir))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        keep_trailing_newline=True,
        # Templates are read once per process (an operator's change applies at restart): checking
        # the files on every render cost a stat() per template per notice.
        auto_reload=False,
    )
    env.filters.update(
        rupiah=format_rupiah,
        angka=format_number,
        wita=lambda v: format_wita(_moment(v)),
        tanggal=lambda v: format_date(_day(v)),
        jam=_time_only,
        # A meeting's time span: one date when it ends the same day in WITA, both otherwise.
        rentang=lambda start, end: format_wita_range(_moment(start), _moment(end)),
        jawaban=lambda v: labels.label(labels.RSVP, v),
        pernyataan=lambda v: STATEMENTS.get(str(getattr(v, "value", v)), "menjawab undangan"),
        status_komitmen=lambda v: labels.label(labels.COMMITMENT_STATUS, v),
        segmen=lambda v: labels.label(labels.SEGMENT, v),
        program=lambda v: labels.label(labels.PROGRAMME, v),
        dana=lambda v: labels.label(labels.FUNDING_SOURCE, v),
        tahap=lambda v: labels.label(labels.BUDGET_STAGE, v),
        # href values: only http(s) links, whatever a template or an old event holds ("#" otherwise).
        tautan=lambda v: (safe_uri(str(v)) if v else None) or "#",
    )
    env.globals["kop"] = dict(LETTERHEAD)
    # Where the reader acts: a reviewer on the commitment, a region on its own page (sign-in first).
    base = pages_base_url.rstrip("/")
    env.globals["halaman_tinjauan"] = lambda commitment_id: f"{base}/tinjauan/{commitment_id}"
    env.globals["halaman_komitmen"] = f"{base}/komitmen"
    env.globals["halaman_dasbor"] = f"{base}/dasbor"
    return env


def letter_context(template: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The letter's date (when its event happened, in WITA) and, for a meeting's letters, its number."""
    moment = context.get("event_time") or datetime.now().astimezone()
    extra: dict[str, Any] = {"tanggal_surat": _moment(moment)}
    event = context.get("event")
    meeting = getattr(event, "meeting", None)
    if template in LETTER_SUBJECTS and meeting is not None:
        extra["nomor_surat"] = letter_number(meeting.meeting_id, _moment(moment))
        extra["perihal"] = LETTER_SUBJECTS[template]
    return extra


class Renderer:
    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env
        self.once = _Once(env)  # which templates render_each may render once per event

    @property
    def environment(self) -> jinja2.Environment:
        return self._env

    def render(self, template: str, context: Mapping[str, Any]) -> Rendered:
        """Subject and plain text from `<template>.txt.j2`, HTML from `<template>.html.j2`."""
        context = {**letter_context(template, context), **context}
        try:
            text_tmpl = self._env.get_template(f"{template}.txt.j2")
            ctx = text_tmpl.new_context(dict(context))
            subject = "".join(text_tmpl.blocks["subject"](ctx)).strip()
            ctx = text_tmpl.new_context(dict(context))
            body = "".join(text_tmpl.blocks["body"](ctx)).strip() + "\n"
            html = self._env.get_template(f"{template}.html.j2").render(dict(context))
        except (jinja2.TemplateError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TemplateFailure(f"template {template!r}: {type(exc).__name__}: {exc}") from exc
        if not subject or "\n" in subject:
            raise TemplateFailure(f"template {template!r}: the subject must be one non-empty line")
        return Rendered(subject=subject, text=body, html=html)


# --- one render per event ------------------------------------------------------------------------
# The notices of one event differ between their recipients only in the salutation
# (`recipient.title`, `recipient.name`). A template that uses nothing else of the recipient, and
# those two only as plain values or conditions, is rendered once per event and recipient shape
# (with or without a title), with markers where the title and name go; each recipient's values
# are then written in (HTML-escaped in the HTML part, as autoescape would). The bytes are those
# of a render per recipient (tests/unit/notifications/test_render_once.py) at a fraction of the
# cost. Any other use of `recipient` (a filter, a comparison, another field) in the template or
# what it includes or extends renders per recipient, as before.
_MARK = secrets.token_hex(6)  # per process: no event text can spell a marker
_TITLE, _NAME = f"\ue000t{_MARK}\ue001", f"\ue000n{_MARK}\ue001"
_RECIPIENT = re.compile(r"\brecipient\b")
_PLAIN_USE = re.compile(r"\brecipient\.(?:name|title)(?=\s*(?:-?\}\}|-?%\}|or\b|and\b))")


@dataclass(frozen=True, slots=True)
class _Marked:
    title: str
    name: str


class _Once:
    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env
        self._eligible: dict[str, bool] = {}

    def eligible(self, template: str) -> bool:
        if template not in self._eligible:
            self._eligible[template] = self._check(template)
        return self._eligible[template]

    def _check(self, template: str) -> bool:
        seen: set[str] = set()
        todo = [f"{template}.txt.j2", f"{template}.html.j2"]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                source, _, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
                referenced = jinja2.meta.find_referenced_templates(self._env.parse(source))
            except jinja2.TemplateError:
                return False  # rendered per recipient, which reports the error
            if len(_RECIPIENT.findall(source)) != len(_PLAIN_USE.findall(source)):
                return False
            for ref in referenced:
                if ref is None:
                    return False  # a computed name: what it includes cannot be checked
                todo.append(ref)
        return True


def _personal(base: Rendered, title: str, name: str, template: str) -> Rendered:
    escaped_title, escaped_name = str(markupsafe.escape(title)), str(markupsafe.escape(name))
    subject = base.subject.replace(_TITLE, title).replace(_NAME, name)
    if not subject or "\n" in subject:
        raise TemplateFailure(f"template {template!r}: the subject must be one non-empty line")
    return Rendered(subject=subject, text=base.text.replace(_TITLE, title).replace(_NAME, name),
                    html=base.html.replace(_TITLE, escaped_title).replace(_NAME, escaped_name))


def render_each(renderer: Renderer, template: str, context: Mapping[str, Any],
                recipients: Sequence[Any]) -> list[Rendered | TemplateFailure]:
    """`renderer.render(template, {**context, "recipient": r})` for each recipient (a failure in
    place of a notice that cannot be rendered), rendering once per recipient shape where the
    template allows."""
    once = renderer.once

    def attempt(ctx: Mapping[str, Any]) -> Rendered | TemplateFailure:
        try:
            return renderer.render(template, ctx)
        except TemplateFailure as exc:
            return exc

    if not once.eligible(template):
        return [attempt({**context, "recipient": r}) for r in recipients]
    by_shape: dict[tuple[bool, bool], Rendered | TemplateFailure] = {}
    out: list[Rendered | TemplateFailure] = []
    for r in recipients:
        title, name = r.title or "", r.name or ""
        shape = (bool(title), bool(name))
        if shape not in by_shape:
            by_shape[shape] = attempt({**context, "recipient": _Marked(title=_TITLE if title else title,
                                                                       name=_NAME if name else name)})
        base = by_shape[shape]
        if isinstance(base, TemplateFailure):
            out.append(base)
            continue
        try:
            out.append(_personal(base, title, name, template))
        except TemplateFailure as exc:
            out.append(exc)
    return out
