"""Request -> submit -> verify -> acknowledge, the revision loop, concurrency and bad input over HTTP."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.contracts.roles import Role
from shared.contracts.topics import COMMITMENTS_EVENTS

from ..conftest import eventually, published_events
from .helpers import bpu_commitment, event_types, running

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
D, B = Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER


async def test_request_submit_verify_acknowledge(topic_prefix, schema_for, db):
    """The whole happy path: each step is a state, an audit record and an event in order; the summary counts it."""
    async with running(topic_prefix, schema_for("com")) as svc:
        cid = (await svc.open("52.04"))["52.04"]
        r = await svc.submit("5204", bpu_commitment(), **{"Idempotency-Key": "sipd-77"})  # SIPD-style code
        assert r.status_code == 200, r.text
        again = await svc.submit("52.04", bpu_commitment(), **{"Idempotency-Key": "sipd-77"})  # a client retry
        assert again.status_code == 200 and again.json()["revision"] == 1
        assert r.json()["status"] == "submitted" and r.json()["total_rp_display"] == "Rp3.024.000.000"
        r = await svc.act(cid, "verify", D, {"note": "Sesuai"})
        assert r.status_code == 200 and r.json()["status"] == "verified", r.text
        r = await svc.act(cid, "acknowledge", B)
        assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text

        audit = (await svc.client.get(f"/commitments/{cid}/audit", headers=await svc.auth(Role.OPERATOR))).json()
        assert [(a["action"], a["from_status"], a["to_status"]) for a in audit] == [
            ("request", None, "requested"), ("submit", "requested", "submitted"),
            ("verify", "submitted", "verified"), ("acknowledge", "verified", "acknowledged")]
        assert all(a["event_id"] and a["at"].endswith("+08:00") for a in audit)

        summary = (await svc.client.get("/summary", headers=await svc.auth(Role.OPERATOR))).json()
        assert summary["province"]["committed_workers"] == 15_000
        assert summary["province"]["acknowledged_workers"] == 15_000
        assert summary["province"]["committed_budget_rp"] == 3_024_000_000
        assert summary["province"]["coverage"]["target_percent"] == "62.22"

        types = await eventually(lambda: _types(topic_prefix, 4), timeout=20)
        assert types == ["requested", "submitted", "verified", "acknowledged"]


async def _types(prefix: str, expect: int):
    types = await event_types(prefix + COMMITMENTS_EVENTS, expect, key="52.04")
    return types if len(types) >= expect else None


async def test_revision_loop(topic_prefix, schema_for, db):
    """Returned with reasons by Disnakertrans and then by BPJS, the region resubmits; revisions count up."""
    async with running(topic_prefix, schema_for("com")) as svc:
        cid = (await svc.open("52.04"))["52.04"]
        assert (await svc.submit("52.04", bpu_commitment())).json()["revision"] == 1
        r = await svc.act(cid, "return", D, {"reasons": ["Lampirkan Perbup"]})
        assert r.status_code == 200 and r.json()["status"] == "returned", r.text
        r = await svc.act(cid, "return", D, {"reasons": []})
        assert r.status_code == 422  # a return needs a reason
        r = await svc.submit("52.04", bpu_commitment(workers=20_000, months=3))
        assert r.json()["status"] == "submitted" and r.json()["revision"] == 2
        assert r.json()["total_rp"] == 1_008_000_000
        assert (await svc.act(cid, "verify", D)).json()["status"] == "verified"
        r = await svc.act(cid, "return", B, {"reasons": ["Jumlah pekerja belum sesuai data NIK"]})
        assert r.json()["status"] == "returned"
        r = await svc.submit("52.04", bpu_commitment(workers=18_000, months=3))
        assert r.json()["revision"] == 3

        audit = await db.fetch(f'SELECT action, reason FROM "{schema_for("com")}".audit_log ORDER BY id')
        assert [a["action"] for a in audit] == ["request", "submit", "return", "resubmit", "verify", "return",
                                                "resubmit"]
        assert audit[2]["reason"] == "Lampirkan Perbup"
        assert await db.fetchval(f'SELECT count(*) FROM "{schema_for("com")}".submissions') == 3


async def test_concurrent_reviewers_cannot_both_win(topic_prefix, schema_for, db):
    """Verify and return at the same moment: one wins, the other gets 409 naming the current state."""
    async with running(topic_prefix, schema_for("com")) as svc:
        cid = (await svc.open("52.01"))["52.01"]
        await svc.submit("52.01", bpu_commitment("52.01"))
        await svc.auth(D)
        results = await asyncio.gather(
            *[svc.act(cid, "verify", D) for _ in range(3)],
            *[svc.act(cid, "return", D, {"reasons": ["Revisi"]}) for _ in range(3)])
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in results]
        winner = next(r for r in results if r.status_code == 200).json()["status"]
        assert all(r.json()["detail"]["current_status"] == winner for r in results if r.status_code == 409)
        schema = schema_for("com")
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".audit_log WHERE from_status = $1',
                                 "submitted") == 1
        published = await published_events(db, schema, topic_prefix + COMMITMENTS_EVENTS)
        assert len(published) == 3  # requested, submitted, one review

        # A stale If-Match is refused too, even when the transition itself would be legal.
        if winner == "verified":
            r = await svc.act(cid, "acknowledge", B, **{"If-Match": '"1"'})
            assert r.status_code == 412 and r.json()["detail"]["current_status"] == "verified"


async def test_bad_input_is_refused_with_a_reason_and_writes_nothing(topic_prefix, schema_for, db):
    """Other region, wrong roles, unknown segment, absurd or negative figures, wrong year, bad totals, huge body."""
    async with running(topic_prefix, schema_for("com")) as svc:
        cid = (await svc.open("52.04", "52.05"))["52.04"]
        good = bpu_commitment()
        other = await svc.auth(Role.REGION_OPERATOR, "52.05")
        r = await svc.client.post("/commitments/52.04/submit", json=good, headers=other)
        assert r.status_code == 403 and "52.05" in r.json()["detail"]
        r = await svc.submit("52.04", bpu_commitment(region="52.05"))
        assert r.status_code == 403 and "52.05" in r.json()["detail"]
        r = await svc.act(cid, "verify", Role.REGION_OPERATOR, region="52.04")
        assert r.status_code == 403
        r = await svc.act(cid, "withdraw", Role.REGION_OPERATOR, region="52.05")
        assert r.status_code == 403 and "52.05" in r.json()["detail"]
        r = await svc.act(cid, "acknowledge", B)
        assert r.status_code == 409 and r.json()["detail"]["current_status"] == "requested"

        cases = {
            "unknown segment": {"lines": [good["lines"][0] | {"segment": "nelayan"}]},
            "unknown funding": {"lines": [good["lines"][0] | {"funding_source": "apbn"}]},
            "negative workers": {"lines": [good["lines"][0] | {"workers": -5}]},
            "absurd workers": {"lines": [good["lines"][0] | {"workers": 9_000_000}]},
            "13 months": {"lines": [good["lines"][0] | {"months": 13}]},
            "unknown field": {"budget_owner": "x"},
        }
        for name, change in cases.items():
            r = await svc.submit("52.04", good | change)
            assert r.status_code == 422, name
        r = await svc.submit("52.04", good | {"fiscal_year": 2025})
        assert r.status_code == 422 and "fiscal_year 2025" in r.json()["detail"]
        r = await svc.submit("52.04", good | {"total_rp": 3_000_000_000})
        assert r.status_code == 422 and "expected Rp3.024.000.000" in r.json()["detail"]
        wrong_line = good["lines"][0] | {"total_rp": 1_080_000_000, "workers": 20_000, "months": 3}
        r = await svc.submit("52.04", good | {"lines": [wrong_line], "total_workers": 20_000, "total_rp": 1_080_000_000})
        assert r.status_code == 422 and "expected Rp1.008.000.000" in r.json()["detail"]
        r = await svc.submit("52.04", good | {"legal_basis": "x" * 300_000})
        assert r.status_code == 413

        schema = schema_for("com")
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".submissions') == 0
        assert await db.fetchval(f'SELECT status FROM "{schema}".commitments WHERE region_code = $1',
                                 "52.04") == "requested"
        assert len(await published_events(db, schema, topic_prefix + COMMITMENTS_EVENTS)) == 2  # the requests only
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".audit_log') == 2


async def test_draft_then_submit_the_draft_then_withdraw(topic_prefix, schema_for, db):
    """A saved draft is submitted without a body; a withdrawn commitment accepts nothing more; regions see only their own."""
    async with running(topic_prefix, schema_for("com")) as svc:
        ids = await svc.open("52.71", "52.72")
        cid = ids["52.71"]
        own = await svc.auth(Role.REGION_OPERATOR, "52.71")
        r = await svc.client.put("/commitments/52.71/draft", json=bpu_commitment("52.71"), headers=own)
        assert r.status_code == 200 and r.json()["status"] == "draft" and r.headers["ETag"] == '"2"', r.text
        r = await svc.client.post("/commitments/52.71/submit", headers=own | {"If-Match": '"2"'})
        assert r.status_code == 200 and r.json()["status"] == "submitted" and r.json()["total_workers"] == 15_000
        r = await svc.act(cid, "withdraw", Role.REGION_OPERATOR, {"note": "APBD belum disahkan"}, region="52.71")
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"
        r = await svc.act(cid, "verify", D)
        assert r.status_code == 409 and r.json()["detail"]["current_status"] == "withdrawn"
        listed = (await svc.client.get("/commitments", headers=own)).json()
        assert [c["region_code"] for c in listed] == ["52.71"]
        assert (await svc.client.get("/commitments/52.72", headers=own)).status_code == 403
        schema = schema_for("com")
        pending = await db.fetchval(f'SELECT count(*) FROM "{schema}".timers WHERE key LIKE $1 '
                                    'AND cancelled_at IS NULL', f"{cid}%")
        assert pending == 0  # withdrawing cancels its reminders and overdue timer
        actions = [a["action"] for a in await db.fetch(f'SELECT action FROM "{schema}".audit_log '
                                                         'WHERE commitment_id = $1 ORDER BY id', uuid.UUID(cid))]
        assert actions == ["request", "save_draft", "submit", "withdraw"]
