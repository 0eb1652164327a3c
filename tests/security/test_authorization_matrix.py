"""Authorization matrix: every write route of every service x every caller (no key, bad keys, each role).

The expected roles of each route are the tables below. The routes themselves are read from the
apps (`app.routes`), so a new write endpoint without a rule here fails the test. For each route a
request that the allowed role can carry out is built against real state; every other caller sends
that same request first and must get 401 (no valid key) or 403 (wrong role or region) with nothing
written (a fingerprint of every table of the service's schema is compared), then the allowed caller
must succeed (2xx). A region operator's key acts only for its own region, in both directions.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from services.commitments.bootstrap import build as build_commitments
from services.commitments.settings import CommitmentsSettings
from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from shared.contracts.roles import Role
from shared.platform.tasks import cancel_and_wait
from tests.integration.commitments.helpers import FakeClock, bpu_commitment
from tests.integration.conftest import eventually, http_client, service_settings
from tests.integration.invitations.conftest import meeting_body
from tests.integration.notifications.conftest import notif_settings

from .helpers import Caller, callers, changed, fingerprint, write_routes

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

A, B, C, D = "52.01", "52.02", "52.03", "52.04"
REGION_SCOPED = "region"  # marker in the tables: a region operator only for its own region

# Who may call each write route. A role listed with REGION_SCOPED acts only for its own region.
COMMITMENTS_RULES: dict[tuple[str, str], set[Role]] = {
    ("POST", "/commitments/requests"): {Role.ORGANIZER},
    ("PUT", "/commitments/{region_code}/draft"): {Role.REGION_OPERATOR},
    ("POST", "/commitments/{region_code}/submit"): {Role.REGION_OPERATOR},
    ("POST", "/commitments/{commitment_id}/verify"): {Role.DISNAKERTRANS_REVIEWER},
    ("POST", "/commitments/{commitment_id}/acknowledge"): {Role.BPJS_REVIEWER},
    ("POST", "/commitments/{commitment_id}/return"): {Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER},
    ("POST", "/commitments/{commitment_id}/withdraw"): {Role.REGION_OPERATOR, Role.ORGANIZER},
    ("POST", "/commitments/{commitment_id}/deadline"): {Role.ORGANIZER},
    # Staff pages: a mailed single-use link or a session is the credential; no API key signs anyone in.
    ("POST", "/masuk"): set(),
    ("POST", "/masuk/{token}"): set(),
    ("POST", "/keluar"): set(),
    ("POST", "/tinjauan/{commitment_id}"): set(),
    ("POST", "/komitmen"): set(),
}
INVITATIONS_RULES: dict[tuple[str, str], set[Role]] = {
    ("POST", "/directory/import"): {Role.ORGANIZER},
    ("PUT", "/directory/{region_code}/{role}"): {Role.ORGANIZER},
    ("POST", "/meetings"): {Role.ORGANIZER},
    ("POST", "/meetings/{meeting_id}/reschedule"): {Role.ORGANIZER},
    ("POST", "/meetings/{meeting_id}/cancel"): {Role.ORGANIZER},
    ("POST", "/meetings/{meeting_id}/invitations"): {Role.ORGANIZER},
    ("POST", "/meetings/{meeting_id}/attendance"): {Role.ORGANIZER},
    ("POST", "/meetings/{meeting_id}/conclude"): {Role.ORGANIZER},
    # The signed RSVP token is the only credential: no API key role may answer for an invitee.
    ("POST", "/rsvp/{token}"): set(),
    ("POST", "/undangan/{token}"): set(),  # the RSVP page: the same token, the same rule
}
NOTIFICATIONS_RULES: dict[tuple[str, str], set[Role]] = {
    ("POST", "/recipients"): {Role.OPERATOR},
    ("PUT", "/recipients/{recipient_id}"): {Role.OPERATOR},
    ("POST", "/deliveries/{delivery_id}/resend"): {Role.OPERATOR},
    ("POST", "/deliveries/resend"): {Role.OPERATOR},
}


@dataclass
class Step:
    """One write the `performer` may do; everyone else is tried first with the same request."""

    route: tuple[str, str]
    path: str
    body: Any
    performer: str  # the Caller label expected to succeed
    region: str | None = None  # the region the resource belongs to (region-scoped routes)
    before: Callable[[], Awaitable[None]] | None = None


@dataclass
class Tally:
    calls: int = 0
    refused: int = 0
    allowed: int = 0
    routes: set = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.routes = set()


def _may(caller: Caller, allowed: set[Role], region: str | None) -> bool:
    if caller.role is None or caller.role not in allowed:
        return False
    return caller.role is not Role.REGION_OPERATOR or region is None or caller.region == region


async def _run(client: Any, db: Any, schema: str, rules: dict, steps: list[Step], who: list[Caller],
               tally: Tally) -> None:
    by_label = {c.label: c for c in who}
    for step in steps:
        if step.before is not None:
            await step.before()
        method, _ = step.route
        allowed = rules[step.route]
        before = await fingerprint(db, schema)
        for caller in who:
            if caller.label == step.performer or _may(caller, allowed, step.region):
                continue  # an allowed role may still be refused by the state (e.g. 409): not an auth question
            r = await client.request(method, step.path, json=step.body, headers=caller.headers)
            tally.calls += 1
            expected = {401} if caller.role is None else {403}
            assert r.status_code in expected, (step.route, caller.label, r.status_code, r.text)
            tally.refused += 1
        assert changed(before, await fingerprint(db, schema)) == [], (step.route, "a refused call wrote state")
        performer = by_label[step.performer]
        r = await client.request(method, step.path, json=step.body, headers=performer.headers)
        tally.calls += 1
        assert r.is_success, (step.route, performer.label, r.status_code, r.text)
        tally.allowed += 1
        tally.routes.add(step.route)


def _check_rules_cover(app: Any, rules: dict, tally: Tally) -> None:
    routes = write_routes(app)
    assert routes - rules.keys() == set(), f"write routes without an authorization rule: {routes - rules.keys()}"
    assert rules.keys() - routes == set(), f"rules for routes that no longer exist: {rules.keys() - routes}"
    untested = {r for r, roles in rules.items() if roles} - tally.routes
    assert untested == set(), f"routes not exercised by the matrix: {untested}"


MATRIX_FIGURES: dict[str, Tally] = {}


async def test_commitments_write_routes_refuse_every_caller_but_the_allowed_role(topic_prefix, schema_for, db):
    """Commitments: no/bad/revoked keys get 401, other roles and other regions 403, nothing written."""
    schema = schema_for("com")
    clock = FakeClock()
    rt, app = build_commitments(service_settings(CommitmentsSettings, topic_prefix, schema), clock=clock)
    await rt.start()
    tally = Tally()
    try:
        who = await callers(rt, A, B)
        org, ra, rb = "organizer", f"region_operator {A}", f"region_operator {B}"
        dis, bpjs = "disnakertrans_reviewer", "bpjs_reviewer"
        async with http_client(app, rt) as client:
            rules = COMMITMENTS_RULES
            await _run(client, db, schema, rules, [
                Step(("POST", "/commitments/requests"), "/commitments/requests", {"regions": [A, B, C, D]}, org),
            ], who, tally)
            ids = {r["region_code"]: str(r["commitment_id"]) for r in await db.fetch(
                f'SELECT region_code, commitment_id FROM "{schema}".commitments')}
            draft, submit = "/commitments/{}/draft", "/commitments/{}/submit"
            body_a, body_b = bpu_commitment(A), bpu_commitment(B)
            steps = [
                Step(("PUT", "/commitments/{region_code}/draft"), draft.format(A), body_a, ra, A),
                Step(("PUT", "/commitments/{region_code}/draft"), draft.format(B), body_b, rb, B),
                Step(("POST", "/commitments/{region_code}/submit"), submit.format(A), body_a, ra, A),
                Step(("POST", "/commitments/{commitment_id}/verify"), f"/commitments/{ids[A]}/verify", None, dis, A),
                Step(("POST", "/commitments/{commitment_id}/return"), f"/commitments/{ids[A]}/return",
                     {"reasons": ["Lampirkan Perbup"]}, bpjs, A),
                Step(("POST", "/commitments/{region_code}/submit"), submit.format(A), body_a, ra, A),
                Step(("POST", "/commitments/{commitment_id}/return"), f"/commitments/{ids[A]}/return",
                     {"reasons": ["Perbaiki jumlah pekerja"]}, dis, A),
                Step(("POST", "/commitments/{region_code}/submit"), submit.format(A), body_a, ra, A),
                Step(("POST", "/commitments/{commitment_id}/verify"), f"/commitments/{ids[A]}/verify", None, dis, A),
                Step(("POST", "/commitments/{commitment_id}/acknowledge"), f"/commitments/{ids[A]}/acknowledge",
                     None, bpjs, A),
                # Region A's key tries to withdraw region B's commitment (and B's key succeeds).
                Step(("POST", "/commitments/{commitment_id}/withdraw"), f"/commitments/{ids[B]}/withdraw", None,
                     rb, B),
                Step(("POST", "/commitments/{commitment_id}/withdraw"), f"/commitments/{ids[C]}/withdraw", None,
                     org, C),
                Step(("POST", "/commitments/{commitment_id}/deadline"), f"/commitments/{ids[D]}/deadline",
                     {"deadline": (clock.now + timedelta(days=60)).isoformat(), "reason": "Perpanjangan"}, org, D),
            ]
            await _run(client, db, schema, rules, steps, who, tally)

            # A region key naming another region in the body is refused, and nothing is written for either.
            before = await fingerprint(db, schema)
            r = await client.post(submit.format(D), json=bpu_commitment(C),
                                  headers=next(c for c in who if c.label == ra).headers)
            assert r.status_code == 403
            key_d = await callers(rt, D, C)
            r = await client.post(submit.format(D), json=bpu_commitment(C),
                                  headers=next(c for c in key_d if c.label == f"region_operator {D}").headers)
            assert r.status_code == 403 and "body names region" in r.text
            tally.calls += 2
            assert changed(before, await fingerprint(db, schema)) == []
            statuses = {r["region_code"]: r["status"] for r in await db.fetch(
                f'SELECT region_code, status FROM "{schema}".commitments')}
            assert statuses == {A: "acknowledged", B: "withdrawn", C: "withdrawn", D: "requested"}
            # Every refused call left no audit record: one per successful step (+ 4 opened requests).
            audits = await db.fetchval(f'SELECT count(*) FROM "{schema}".audit_log')
            assert audits == tally.allowed - 1 + 4
            # No API key of any role opens a session or the dashboard: the pages know only sessions.
            for caller in who:
                r = await client.post(f"/masuk/{'A' * 43}", content="csrf=1.x", headers={
                    **caller.headers, "content-type": "application/x-www-form-urlencoded"})
                assert r.status_code in (400, 410) and "set-cookie" not in r.headers, (caller.label, r.status_code)
                r = await client.get("/dasbor", headers=caller.headers)
                assert r.status_code == 303 and r.headers["location"] == "/masuk", caller.label
                r = await client.post(f"/tinjauan/{uuid.uuid4()}", content="action=verify", headers={
                    **caller.headers, "content-type": "application/x-www-form-urlencoded"})
                assert r.status_code == 401 and "Sesi Anda telah berakhir" in r.text, caller.label
                tally.calls += 2
                tally.refused += 2
        _check_rules_cover(app, COMMITMENTS_RULES, tally)
    finally:
        await rt.stop()
    MATRIX_FIGURES["commitments"] = tally
    print(f"\n[matrix] commitments: {len(COMMITMENTS_RULES)} routes, {len(who)} callers, {tally.calls} calls, "
          f"{tally.refused} refused, {tally.allowed} allowed")


async def test_invitations_write_routes_are_organizer_only_and_rsvp_needs_its_token(topic_prefix, schema_for, db):
    """Invitations: only the organizer writes; no API key of any role can answer an RSVP without the token."""
    schema = schema_for("inv")
    clock = FakeClock()
    rt, app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema,
                                                 timer_poll_seconds=0.05), clock=clock)
    await rt.start()
    tally = Tally()
    try:
        who = await callers(rt, A, B)
        org = "organizer"
        start = clock.now + timedelta(days=5)
        async with http_client(app, rt) as client:
            rules = INVITATIONS_RULES
            seat = {"name": "Drs. H. Contoh Pejabat", "title": "Sekretaris Daerah Kabupaten Lombok Barat",
                    "email": "sekda.contoh@lombokbaratkab.go.id", "phone": "+62 812-3456-7890"}
            await _run(client, db, schema, rules, [
                Step(("POST", "/directory/import"), "/directory/import", None, org),
                Step(("PUT", "/directory/{region_code}/{role}"), f"/directory/{A}/sekda", seat, org),
                Step(("POST", "/meetings"), "/meetings", meeting_body(start), org),
            ], who, tally)
            first = str(await db.fetchval(f'SELECT meeting_id FROM "{schema}".meetings'))
            await _run(client, db, schema, rules, [
                Step(("POST", "/meetings/{meeting_id}/reschedule"), f"/meetings/{first}/reschedule",
                     {"starts_at": (start + timedelta(hours=1)).isoformat(),
                      "ends_at": (start + timedelta(hours=4)).isoformat(), "reason": "Agenda Gubernur"}, org),
                Step(("POST", "/meetings/{meeting_id}/invitations"), f"/meetings/{first}/invitations", None, org),
                Step(("POST", "/meetings"), "/meetings", meeting_body(start + timedelta(days=7)), org),
            ], who, tally)
            second = str(await db.fetchval(
                f'SELECT meeting_id FROM "{schema}".meetings WHERE meeting_id <> $1', first))
            invitation = str(await db.fetchval(
                f'SELECT invitation_id FROM "{schema}".invitations WHERE region_code = $1 LIMIT 1', A))

            async def settle(moment: Any) -> None:
                # Moving the clock makes reminders due; let the wheel fire them before the fingerprint.
                clock.now = moment
                await eventually(lambda: db.fetchval(
                    f'SELECT count(*) = 0 FROM "{schema}".timers WHERE due_at <= $1 AND fired_at IS NULL '
                    f'AND cancelled_at IS NULL AND failed_at IS NULL', moment), timeout=20)

            async def to_attendance_window() -> None:
                await settle(start + timedelta(minutes=30))

            async def after_start() -> None:
                await settle(start + timedelta(hours=2))

            await _run(client, db, schema, rules, [
                Step(("POST", "/meetings/{meeting_id}/cancel"), f"/meetings/{second}/cancel",
                     {"reason": "Ditunda"}, org),
                Step(("POST", "/meetings/{meeting_id}/attendance"), f"/meetings/{first}/attendance",
                     {"invitation_ids": [invitation]}, org, before=to_attendance_window),
                Step(("POST", "/meetings/{meeting_id}/conclude"), f"/meetings/{first}/conclude", None, org,
                     before=after_start),
            ], who, tally)

            # RSVP: every API key (and none) with a forged token is refused; nothing is answered.
            before = await fingerprint(db, schema)
            forged = f"{invitation.replace('-', '')}.{int((start + timedelta(days=1)).timestamp())}.{'A' * 43}"
            for caller in who:
                r = await client.post(f"/rsvp/{forged}", json={"response": "accepted"}, headers=caller.headers)
                tally.calls += 1
                assert r.status_code == 403, (caller.label, r.status_code, r.text)
                tally.refused += 1
                r = await client.post(f"/undangan/{forged}", content="response=accepted",
                                      headers={**caller.headers, "content-type": "application/x-www-form-urlencoded"})
                tally.calls += 1
                assert r.status_code == 403 and "Tautan tidak sah" in r.text, (caller.label, r.status_code)
                tally.refused += 1
            assert changed(before, await fingerprint(db, schema)) == []
        _check_rules_cover(app, INVITATIONS_RULES, tally)
    finally:
        await rt.stop()
    print(f"\n[matrix] invitations: {len(INVITATIONS_RULES)} routes, {len(who)} callers, {tally.calls} calls, "
          f"{tally.refused} refused, {tally.allowed} allowed")


async def test_notifications_write_routes_are_operator_only(topic_prefix, schema_for, db):
    """Notifications: only an operator key creates or edits a recipient; other callers write nothing."""
    schema = schema_for("not")
    rt, app = build_notifications(notif_settings(topic_prefix, schema, 2525))
    await rt.start()
    tally = Tally()
    try:
        who = await callers(rt, A, B)
        body = {"name": "Staf Pengawas", "title": "Pengawas Ketenagakerjaan", "role": "disnakertrans_staff",
                "region_code": A, "email": "pengawas@disnakertrans.ntbprov.go.id", "channels": ["email"]}
        # Two failed deliveries to resend; the sender is stopped so only requests change rows.
        await cancel_and_wait(rt.background_task("sender"))
        failed = [uuid.uuid4(), uuid.uuid4()]
        for n, delivery in enumerate(failed):
            await db.execute(
                f'INSERT INTO "{schema}".deliveries (delivery_id, source_event_id, source_event_type, recipient_id, '
                "recipient_name, channel, address, template, subject, text_body, html_body, status, attempts, reason) "
                "VALUES ($1, $2, 't.v1', 'r', 'R', 'email', 'r@example.go.id', 't', 's', 'x', 'x', 'failed', 3, 'gave up')",
                delivery, f"event-{n}")
        async with http_client(app, rt) as client:
            await _run(client, db, schema, NOTIFICATIONS_RULES, [
                Step(("POST", "/recipients"), "/recipients", body | {"recipient_id": "pengawas-1"}, "operator"),
                Step(("PUT", "/recipients/{recipient_id}"), "/recipients/pengawas-1", body | {"active": False},
                     "operator"),
                Step(("POST", "/deliveries/{delivery_id}/resend"), f"/deliveries/{failed[0]}/resend", None, "operator"),
                Step(("POST", "/deliveries/resend"), "/deliveries/resend?event_id=event-1", None, "operator"),
            ], who, tally)
        _check_rules_cover(app, NOTIFICATIONS_RULES, tally)
    finally:
        await rt.stop()
    print(f"\n[matrix] notifications: {len(NOTIFICATIONS_RULES)} routes, {len(who)} callers, {tally.calls} calls, "
          f"{tally.refused} refused, {tally.allowed} allowed")


@pytest.mark.parametrize("service", ["commitments", "invitations", "notifications"])
async def test_bad_bodies_without_a_key_get_401_not_422(service, topic_prefix, schema_for, db):
    """Authentication runs before body validation: a caller without a valid key learns nothing about the body."""
    schema = schema_for(service[:3])
    if service == "commitments":
        rt, app = build_commitments(service_settings(CommitmentsSettings, topic_prefix, schema))
        rules = COMMITMENTS_RULES
    elif service == "invitations":
        rt, app = build_invitations(service_settings(InvitationsSettings, topic_prefix, schema))
        rules = INVITATIONS_RULES
    else:
        rt, app = build_notifications(notif_settings(topic_prefix, schema, 2525))
        rules = NOTIFICATIONS_RULES
    await rt.start()
    try:
        who = [c for c in await callers(rt, A, B) if c.role is None or c.role is Role.REGION_OPERATOR]
        params = {"region_code": A, "commitment_id": "00000000-0000-0000-0000-000000000000", "role": "sekda",
                  "meeting_id": "00000000-0000-0000-0000-000000000000", "recipient_id": "x",
                  "delivery_id": "00000000-0000-0000-0000-000000000000"}
        checked = 0
        async with http_client(app, rt) as client:
            for (method, template), roles in rules.items():
                if not roles:
                    continue
                path = template.format(**params)
                # Routes by id learn the resource's region from the database, after validation: there a
                # region key is an allowed role, and only region-coded paths are checked for the region.
                region = A if "{region_code}" in template and service == "commitments" else None
                for caller in who:
                    if _may(caller, roles, region):
                        continue
                    for content in (b'{"unexpected": 1}', b"[]", b'"x"', b"{}"):
                        r = await client.request(method, path, content=content, headers=caller.headers | {
                            "Content-Type": "application/json"})
                        expected = {401} if caller.role is None else {403}
                        assert r.status_code in expected, (method, template, caller.label, content, r.text)
                        checked += 1
                    # Text that is not JSON at all is refused by the parser before authentication: a 422
                    # saying only "JSON decode error", which names no field and no resource.
                    r = await client.request(method, path, content=b'{"a": [1, 2', headers=caller.headers | {
                        "Content-Type": "application/json"})
                    if r.status_code == 422:
                        assert [e["type"] for e in r.json()["detail"]] == ["json_invalid"], r.text
                    else:
                        assert r.status_code in ({401} if caller.role is None else {403}), r.text
                    checked += 1
    finally:
        await rt.stop()
    print(f"\n[auth-first] {service}: {checked} calls with bad bodies and no key or a wrong role")
