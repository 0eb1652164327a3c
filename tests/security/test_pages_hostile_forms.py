"""Hostile form posts to every page form, as raw bytes over a real socket to the running services.

The invitations service (RSVP page) and the commitments service (sign-in, the regency's page, the
reviewers' page, sign-out) run under uvicorn on free ports against the real stack; requests are
written byte by byte on a TCP socket (no HTTP library shapes them). Each drawn request mixes:
arbitrary bytes, non-UTF-8, percent-encoded lone surrogates / NUL / control characters / line
breaks, duplicate and unknown fields, values at and over the limits, wrong types and non-finite
numbers, missing / forged / expired / foreign CSRF tokens, and missing / garbage / forged / expired
/ wrong-role session cookies. Every answer is a page in Indonesian on the province's letterhead, or
a redirect; never a 5xx, JSON or a traceback; an unreadable form is not echoed; an unescaped
marker never comes back; a refusal writes nothing. The valid requests among them are applied,
once: replaying one changes nothing.

Examples: NTB_HYPOTHESIS_PROFILE=ci (default) or long, e.g.
    NTB_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/security/test_pages_hostile_forms.py -q -s
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st

from services.commitments import sign_in_mail
from services.commitments.bootstrap import build as build_commitments
from services.commitments.settings import DEV_SESSION_SECRET, CommitmentsSettings
from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from shared.contracts.roles import Role
from shared.platform import web, web_session
from shared.platform.auth import ApiKeyStore
from tests.integration.commitments.helpers import FakeClock
from tests.integration.conftest import http_client, issue_key, service_settings
from tests.integration.invitations.conftest import scheduled_and_invited, tokens_by_seat
from tests.integration.notifications.conftest import free_port

from .helpers import changed, fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

PROFILES = {"ci": 240, "long": 3000}  # requests drawn per run
EXAMPLES = PROFILES[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")]
SECRET = DEV_SESSION_SECRET.encode()
LETTERHEAD = "Pemerintah Provinsi Nusa Tenggara Barat"
MARK = "<x-gema>"  # put into values: it may come back escaped (a form shown again), never as markup
OPERATOR = ("operator@dompukab.go.id", "Operator Kabupaten Dompu", Role.REGION_OPERATOR, "52.05")
REVIEWER = ("verifikator@disnakertrans.ntbprov.go.id", "Verifikator Disnakertrans NTB", Role.DISNAKERTRANS_REVIEWER,
            None)
VALID_LINE = {"budget_stage": "murni", "signatory_name": "Sekretaris Daerah Kabupaten Dompu",
              "legal_basis": "Perbup Dompu No. 7 Tahun 2025", "l0_segment": "pekerja_rentan_bpu",
              "l0_workers": "15000", "l0_months": "12", "l0_funding": "apbd_kabupaten_kota"}

# Form -> (service, fields the page sends). The targets' paths are filled in once the data exists.
FORMS = {
    "komitmen": ("com", ["action", "version", "budget_stage", "signatory_name", "legal_basis", "l0_segment",
                         "l0_jht", "l0_jp", "l0_workers", "l0_months", "l0_wage", "l0_risk", "l0_funding",
                         "l1_segment", "l1_workers"]),
    "tinjauan": ("com", ["action", "note", "reasons", "version"]),
    "masuk": ("com", ["email", "lanjut"]),
    "tautan": ("com", []),
    "keluar": ("com", []),
    "undangan": ("inv", ["response", "reason", "delegate_name", "delegate_title", "delegate_email",
                         "delegate_phone"]),
}

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e999", "-1", "0", "1.5", "15.000", "١٢", "²", "+1",
                     " 1", "0x1f", "99999999999999999999", "true", "null", "[]", "{}", "verify", "return",
                     "acknowledge", "sampaikan", "konsep", "hitung", "accepted", "declined", "delegated", "//evil.example",
                     "/tinjauan/../keluar", "https://evil.example/",
                     "pekerja_rentan_bpu", "apbd_kabupaten_kota", "operator@dompukab.go.id"]),
    st.text(max_size=20).map(lambda t: t + MARK),
    st.integers(min_value=web.MAX_FORM_BYTES - 64, max_value=web.MAX_FORM_BYTES + 64).map(lambda n: "a" * n),
)
# Percent-encodings a browser never sends: lone surrogates (CESU), NUL, C0/C1 controls, CR/LF, bad UTF-8.
RAW_ESCAPES = st.sampled_from(["%ED%A0%80", "%ED%BF%BF", "%00", "%01", "%1B", "%7F", "%C2%85", "%0D%0A", "%0A",
                               "%FF", "%C0%AF", "%E2%80%AE", "%EF%BF%BE", "%", "%G1", "%F0%9F"])


@st.composite
def form_body(draw: Any, fields: list[str]) -> dict[str, Any]:
    names = st.sampled_from([*fields, "csrf", "admin", "l9_segment", "", "csrf[]"]) if fields else \
        st.sampled_from(["csrf", "admin", ""])
    pairs = draw(st.lists(st.tuples(names, HOSTILE_TEXT), max_size=8))
    encoded = [f"{quote(k)}={quote(v, safe='')}" for k, v in pairs]
    if draw(st.booleans()):  # splice raw escapes into a value
        encoded.append(f"{draw(names)}=a{draw(RAW_ESCAPES)}b")
    return {"kind": "fields", "pairs": encoded, "valid_base": draw(st.booleans()),
            "duplicate": draw(st.booleans())}


REQUEST = st.fixed_dictionaries({
    "form": st.sampled_from(sorted(FORMS)),
    "body": st.one_of(st.binary(max_size=600).map(lambda b: {"kind": "bytes", "bytes": b}),
                      st.sampled_from(sorted(FORMS)).flatmap(lambda f: form_body(FORMS[f][1]))),
    "csrf": st.sampled_from(["valid", "valid", "missing", "forged", "expired", "other-subject", "garbage"]),
    "cookie": st.sampled_from(["valid", "valid", "missing", "garbage-bytes", "forged", "expired", "wrong-role",
                               "twice"]),
    "content_type": st.sampled_from(["application/x-www-form-urlencoded"] * 4 + [
        "application/x-www-form-urlencoded; charset=latin-1", "multipart/form-data; boundary=x", "application/json",
        "text/plain", "", "application/x-www-form-urlencoded\x00"]),
    "path": st.sampled_from(["good"] * 6 + ["random-uuid", "not-a-uuid", "%00", "%ED%A0%80", "x" * 300, "good/..",
                                             "good?x=1", "good?selesai=1&selesai=2"]),
    # Half the requests are hostile in one respect only (the rest as our page sends it), some in none:
    # a valid form must be applied, a form wrong in one way refused for that way.
    "focus": st.sampled_from(["all"] * 6 + ["body", "csrf", "cookie", "content_type", "path", "none"]),
})
VALID = {"csrf": "valid", "cookie": "valid", "content_type": "application/x-www-form-urlencoded", "path": "good"}


def draw_requests() -> list[dict[str, Any]]:
    """Drawn first, sent after: the socket and the database live on the test's event loop."""
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(REQUEST)
    def draw(request: dict[str, Any]) -> None:
        drawn.append(request)

    draw()
    return drawn


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


async def raw_request(port: int, method: str, path: str, headers: list[tuple[bytes, bytes]],
                      body: bytes = b"") -> Reply:
    """One HTTP/1.1 exchange written by hand on a socket (the bytes are exactly these)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
                b"Content-Length: " + str(len(body)).encode()]
        head += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    parsed = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Reply(status, parsed, payload.decode("utf-8", "replace"))


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task, int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task, port


def cookie_of(person: tuple, *, lifetime: float = 3600) -> str:
    email, name, role, region = person
    return web_session.issue(SECRET, email=email, name=name, role=role, region_code=region, lifetime_seconds=lifetime)


def key_id_of(person: tuple) -> str:
    return web_session.subject_of(person[0])


async def test_hostile_form_posts_over_a_raw_socket(topic_prefix, schema_for, db):
    com_schema, inv_schema = schema_for("com"), schema_for("inv")
    clock = FakeClock()
    com, com_app = build_commitments(service_settings(
        CommitmentsSettings, topic_prefix, com_schema, timer_poll_seconds=0.2, smtp_port=free_port(),
        sign_in_mail_poll_seconds=30, sign_in_mail_backoff_base_seconds=30), clock=clock)
    inv, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, inv_schema,
                                                      timer_poll_seconds=0.2), clock=clock)
    await com.start()
    await inv.start()
    servers: list[tuple[uvicorn.Server, asyncio.Task]] = []
    outcomes: Counter[str] = Counter()
    try:
        for app, rt in ((com_app, com), (inv_app, inv)):
            app.state.api_keys = ApiKeyStore(rt.pool, rt.settings.api_key_pepper)
        (com_server, com_task, com_port), (inv_server, inv_task, inv_port) = await serve(com_app), await serve(inv_app)
        servers = [(com_server, com_task), (inv_server, inv_task)]
        # The data the forms act on: Dompu's request (submitted once, so a reviewer can act), 30 invitations.
        async with http_client(com_app, com) as client:
            org = {"Authorization": f"Bearer {await issue_key(com, Role.ORGANIZER)}"}
            r = await client.post("/commitments/requests", json={"regions": ["52.05", "52.01"]}, headers=org)
            commitment_id = {o["region_code"]: o["commitment_id"] for o in r.json()["opened"]}["52.05"]
        async with http_client(inv_app, inv) as client:
            org = {"Authorization": f"Bearer {await issue_key(inv, Role.ORGANIZER)}"}
            await scheduled_and_invited(client, org, clock.now + timedelta(days=5))
        _, rsvp_token = (await tokens_by_seat(db, inv_schema, topic_prefix))[("52.05", "kepala_bpkad")]
        links = [await sign_in_mail.request_link(com.pool, SECRET, REVIEWER[0], clock.now, timedelta(minutes=15))
                 for _ in range(EXAMPLES // 6 + 2)]

        def target(form: str, path: str) -> tuple[int, str, str]:
            """(port, request path, CSRF subject) for a form and a path variant."""
            good = {"komitmen": "/komitmen", "tinjauan": f"/tinjauan/{commitment_id}", "masuk": "/masuk",
                    "tautan": f"/masuk/{links[0]}", "keluar": "/keluar", "undangan": f"/undangan/{rsvp_token}"}[form]
            if path.startswith("good?"):
                good += path[4:]
            elif path != "good" and form not in ("komitmen", "masuk", "keluar"):
                variant = {"random-uuid": uuid.uuid4().hex, "good/..": good.rsplit("/", 1)[1] + "/.."}.get(path, path)
                good = good.rsplit("/", 1)[0] + "/" + variant
            subject = {"komitmen": f"{key_id_of(OPERATOR)}:komitmen", "tinjauan": f"{key_id_of(REVIEWER)}:{commitment_id}",
                       "masuk": "masuk", "tautan": "tautan:" + sign_in_mail.token_hash(links[0]),
                       "keluar": key_id_of(REVIEWER), "undangan": ""}[form]
            return (inv_port if FORMS[form][0] == "inv" else com_port), good, subject

        async def csrf_for(form: str, port: int, path: str, cookie: str) -> str:
            if form != "undangan":
                return ""
            sent = [(b"Cookie", cookie.encode("utf-8", "surrogateescape"))] if cookie else []
            page = await raw_request(port, "GET", path, sent)
            found = re.search(r'name="csrf" value="([^"]+)"', page.body)
            return found.group(1) if found else ""

        async def version_of(region: str = "52.05") -> str:
            return str(await db.fetchval(f'SELECT version FROM "{com_schema}".commitments WHERE region_code = $1',
                                         region))

        async def state() -> tuple[dict[str, str], Any]:
            # sign_in_links: the mail worker updates rows on its own; what a request changes is counted.
            links_state = await db.fetchrow(f'SELECT count(*), count(used_at) FROM "{com_schema}".sign_in_links')
            return ({**await fingerprint(db, com_schema, skip=("sign_in_links",)),
                     **{f"inv.{k}": v for k, v in (await fingerprint(db, inv_schema)).items()}}, tuple(links_state))

        for i, case in enumerate(draw_requests()):
            if case["focus"] != "all":
                case = case | {k: v for k, v in VALID.items() if k != case["focus"]}
                if case["focus"] != "body":
                    case["body"] = {"kind": "fields", "pairs": [], "valid_base": True, "duplicate": False}
            form = case["form"]
            port, path, subject = target(form, case["path"])
            person = OPERATOR if form == "komitmen" else REVIEWER
            cookie = {"valid": f"{web_session.COOKIE}={cookie_of(person)}", "missing": "",
                      "garbage-bytes": f"{web_session.COOKIE}=\udcff\udcfe\x01;;==",
                      "forged": f"{web_session.COOKIE}={cookie_of(person)[:-4]}AAAA",
                      "expired": f"{web_session.COOKIE}={cookie_of(person, lifetime=-10)}",
                      "wrong-role": f"{web_session.COOKIE}="
                                    f"{cookie_of(REVIEWER if form == 'komitmen' else OPERATOR)}",
                      "twice": f"{web_session.COOKIE}={cookie_of(person)}; {web_session.COOKIE}=x"}[case["cookie"]]
            csrf = {"valid": web.csrf_token(SECRET, subject), "missing": None,
                    "forged": web.csrf_token(b"k" * 32, subject),
                    "expired": web.csrf_token(SECRET, subject, now=clock.now.timestamp() - 5 * 3600),
                    "other-subject": web.csrf_token(SECRET, "someone-else"), "garbage": "²." + MARK}[case["csrf"]]
            if form == "undangan" and case["csrf"] == "valid":
                csrf = await csrf_for(form, port, path, cookie) or csrf
            body = case["body"]
            if body["kind"] == "bytes":
                payload = body["bytes"]
            else:
                pairs = list(body["pairs"])
                if body["valid_base"]:
                    base = {"komitmen": VALID_LINE | {"action": "sampaikan", "version": await version_of()},
                            "tinjauan": {"action": "return", "reasons": "Lampirkan Perbup", "version":
                                         await version_of()},
                            "masuk": {"email": REVIEWER[0]}, "undangan": {"response": "accepted"}}.get(form, {})
                    pairs = [f"{k}={quote(v, safe='')}" for k, v in base.items()] + (pairs if body["duplicate"] else [])
                if csrf is not None:
                    pairs.insert(0, f"csrf={quote(csrf, safe='')}")
                payload = "&".join(pairs).encode()
            headers = [(b"Content-Type", case["content_type"].encode("latin-1"))] if case["content_type"] else []
            if cookie:
                headers.append((b"Cookie", cookie.encode("utf-8", "surrogateescape")))
            before = await state()
            reply = await raw_request(port, "POST", path, headers, payload)
            outcomes[f"{form} {reply.status}"] += 1
            where = (i, form, case["path"], case["csrf"], case["cookie"], reply.status, reply.body[:300])
            assert reply.status < 500, where
            if reply.body == "Invalid HTTP request received.":
                # A header HTTP forbids (NUL, control bytes): uvicorn's parser refuses it before any app code.
                assert reply.status == 400, where
                assert any((c < 0x20 and c != 0x09) or c == 0x7F for _, value in headers for c in value), where
                outcomes[f"{form} {reply.status}"] -= 1
                outcomes["refused by the HTTP parser"] += 1
                continue
            assert "Traceback" not in reply.body and MARK not in reply.body, where
            if case["focus"] == "none":  # as our page sends it: applied, or refused by the state it meets
                assert reply.status in (200, 303, 409, 410, 412), where
            if reply.status in (302, 303):
                assert reply.headers.get("location", "").startswith("/"), where
                continue
            if reply.status == 200:  # "Hitung" (figures, nothing saved) or /masuk's same answer for everyone
                assert form in ("komitmen", "masuk") and LETTERHEAD in reply.body, where
                if form == "komitmen":
                    assert changed(*[before[0], (await state())[0]]) == [], where
                continue
            assert 400 <= reply.status < 500, where
            assert reply.headers.get("content-type", "").startswith("text/html"), where
            assert LETTERHEAD in reply.body and '"detail"' not in reply.body, where
            after = await state()
            assert changed(before[0], after[0]) == [] and before[1] == after[1], where
        print(f"\n[page forms over a raw socket] {sum(outcomes.values())} requests: {dict(sorted(outcomes.items()))}")

        # A valid submission is applied once: replayed (a second click, a resent form), it changes nothing.
        lombok_barat = ("operator@lombokbaratkab.go.id", "Operator Kabupaten Lombok Barat", Role.REGION_OPERATOR,
                        "52.01")
        body = "&".join(f"{k}={quote(v, safe='')}" for k, v in (VALID_LINE | {
            "action": "sampaikan", "version": await version_of("52.01"),
            "csrf": web.csrf_token(SECRET, f"{key_id_of(lombok_barat)}:komitmen")}).items()).encode()
        headers = [(b"Content-Type", b"application/x-www-form-urlencoded"),
                   (b"Cookie", f"{web_session.COOKIE}={cookie_of(lombok_barat)}".encode())]
        count = f'SELECT count(*) FROM "{com_schema}".submissions s JOIN "{com_schema}".commitments c ' \
                "USING (commitment_id) WHERE c.region_code = '52.01'"
        assert await db.fetchval(count) == 0
        assert (await raw_request(com_port, "POST", "/komitmen", headers, body)).status == 303
        before = await state()
        replay = await raw_request(com_port, "POST", "/komitmen", headers, body)
        assert replay.status in (409, 412) and LETTERHEAD in replay.body, replay.status
        assert changed(before[0], (await state())[0]) == []
        assert await db.fetchval(count) == 1
    finally:
        for server, task in servers:
            server.should_exit = True
            await task
        await inv.stop()
        await com.stop()
