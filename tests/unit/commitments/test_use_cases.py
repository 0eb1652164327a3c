"""The commitments use cases against a fake unit of work: what they write, what they emit, what they refuse.

The in-memory store has only the methods these use cases call; SQL stays in services.commitments.store,
which the integration tests run on PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.commitments import operations as ops
from services.commitments.workflow import Action, ActionForbidden, IllegalTransition
from shared.contracts.commitments import (
    CommitmentBody,
    CommitmentStatus as S,
    CommitmentSubmitted,
    CommitmentVerified,
    CommitmentWithdrawn,
)
from shared.contracts.roles import Role
from shared.platform.errors import Forbidden, Invalid, NotFound, StaleVersion
from shared.platform.unit_of_work import Actor
from tests.unit.fakes import NOW, fake_unit_of_work

REGION = "52.04"
OPERATOR = Actor("key-sumbawa", Role.REGION_OPERATOR, REGION)
DISNAKER = Actor("key-disnaker", Role.DISNAKERTRANS_REVIEWER)
BPJS = Actor("key-bpjs", Role.BPJS_REVIEWER)


class MemoryStore:
    """Commitment rows in a dict; every write is also appended to `writes` (a refusal must leave it empty)."""

    def __init__(self, *rows: dict[str, Any]) -> None:
        self.rows = {row["commitment_id"]: row for row in rows}
        self.submissions: set[str] = set()
        self.writes: list[tuple[str, Any]] = []
        self.audits: list[dict[str, Any]] = []

    async def lock(self, commitment_id: uuid.UUID) -> dict[str, Any] | None:
        return self.rows.get(commitment_id)

    get = lock

    async def lock_by_region(self, region_code: str, fiscal_year: int) -> dict[str, Any] | None:
        return next((r for r in self.rows.values()
                     if (r["region_code"], r["fiscal_year"]) == (region_code, fiscal_year)), None)

    async def submission_exists(self, submission_id: str) -> bool:
        return submission_id in self.submissions

    async def save_body(self, commitment_id: uuid.UUID, *, status: str, revision: int, at: Any,
                        **columns: Any) -> None:
        self.writes.append(("save_body", commitment_id))
        row = self.rows[commitment_id]
        row.update(columns, status=S(status), revision=revision, version=row["version"] + 1)

    async def insert_submission(self, *, submission_id: str, **columns: Any) -> bool:
        self.writes.append(("insert_submission", submission_id))
        self.submissions.add(submission_id)
        return True

    async def set_status(self, commitment_id: uuid.UUID, status: str, at: Any) -> None:
        self.writes.append(("set_status", commitment_id))
        row = self.rows[commitment_id]
        row.update(status=S(status), version=row["version"] + 1)

    async def cancel_timers(self, kind: str, key_prefix: str) -> None:
        self.writes.append(("cancel_timers", kind))

    async def audit(self, **entry: Any) -> None:
        self.writes.append(("audit", entry["action"]))
        self.audits.append(entry)


def commitment(status: S = S.REQUESTED, **columns: Any) -> dict[str, Any]:
    return {"commitment_id": uuid.uuid4(), "region_code": REGION, "fiscal_year": 2026, "status": status,
            "version": 1, "revision": 0, "body": None, "deadline": NOW + timedelta(days=30),
            "total_workers": 0, "total_rp": 0} | columns


def body(workers: int = 15_000, total_rp: int | None = None, fiscal_year: int = 2026) -> CommitmentBody:
    total = workers * 12 * 16_800 if total_rp is None else total_rp
    return CommitmentBody.model_validate({
        "region_code": REGION, "fiscal_year": fiscal_year, "budget_stage": "murni", "signatory_name": "Sekda",
        "lines": [{"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": workers, "months": 12,
                   "unit_contribution_rp": 16_800, "total_rp": total, "funding_source": "apbd_kabupaten_kota"}],
        "total_workers": workers, "total_rp": total})


async def test_submit_writes_the_commitment_its_submission_and_audit_and_emits_one_event() -> None:
    """A region's submission is saved as submitted (revision 1), audited, and emitted with the work's causation."""
    row = commitment()
    store = MemoryStore(row)
    uow, outbox = fake_unit_of_work(store, actor=OPERATOR, correlation_id="flow-1", causation_id="req-1")
    saved, fresh = await ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026,
                                    submission_id="http:52.04:k1", channel="http")
    assert fresh and saved["status"] is S.SUBMITTED and saved["revision"] == 1
    assert saved["total_rp"] == 3_024_000_000 and saved["total_workers"] == 15_000
    assert store.submissions == {"http:52.04:k1"}
    [(payload, event)] = outbox.emitted
    assert isinstance(payload, CommitmentSubmitted) and payload.revision == 1
    assert payload.submitted_by == "key-sumbawa (region_operator)" and payload.channel == "http"
    assert (event.correlation_id, event.causation_id) == ("flow-1", "req-1")
    [entry] = store.audits
    assert (entry["action"], entry["from_status"], entry["to_status"], entry["actor"], entry["role"]) == (
        "submit", S.REQUESTED, S.SUBMITTED, "key-sumbawa", "region_operator")
    assert entry["event_id"] == event.id and entry["at"] == NOW


async def test_a_known_submission_id_changes_nothing() -> None:
    """The same submission twice (a redelivered event, a repeated Idempotency-Key) is applied once."""
    store = MemoryStore(commitment())
    uow, outbox = fake_unit_of_work(store, actor=OPERATOR)
    await ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026, submission_id="event:52.04:s1",
                     channel="event")
    writes = len(store.writes)
    _, fresh = await ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026,
                                submission_id="event:52.04:s1", channel="event")
    assert not fresh and len(store.writes) == writes and len(outbox.emitted) == 1


async def test_a_returned_commitment_resubmitted_is_audited_as_a_resubmission() -> None:
    """From returned, submit moves to submitted again, audited as resubmit, with the next revision."""
    store = MemoryStore(commitment(S.RETURNED, revision=1, version=4))
    uow, _ = fake_unit_of_work(store, actor=OPERATOR)
    saved, _ = await ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026, submission_id="s2",
                                channel="http", expected_version=4)
    assert saved["status"] is S.SUBMITTED and saved["revision"] == 2
    assert store.audits[-1]["action"] == "resubmit"


async def test_disnakertrans_verifies_a_submitted_commitment() -> None:
    """verify: submitted -> verified, one CommitmentVerified naming the reviewer, audited with the note."""
    row = commitment(S.SUBMITTED, total_workers=15_000, total_rp=3_024_000_000)
    store = MemoryStore(row)
    uow, outbox = fake_unit_of_work(store, actor=DISNAKER)
    saved = await ops.review(uow, commitment_id=row["commitment_id"], action=Action.VERIFY, note="Lengkap",
                             expected_version=1)
    assert saved["status"] is S.VERIFIED and saved["version"] == 2
    [payload] = outbox.payloads()
    assert isinstance(payload, CommitmentVerified) and payload.actor == "key-disnaker (disnakertrans_reviewer)"
    assert payload.total_rp == 3_024_000_000 and payload.note == "Lengkap"
    assert [(a["action"], a["from_status"], a["to_status"], a["reason"]) for a in store.audits] == [
        ("verify", S.SUBMITTED, S.VERIFIED, "Lengkap")]


async def test_withdrawing_cancels_the_deadline_timers() -> None:
    """A withdrawn commitment gets no more reminders nor an overdue escalation."""
    row = commitment(S.DRAFT)
    store = MemoryStore(row)
    uow, outbox = fake_unit_of_work(store, actor=OPERATOR)
    await ops.review(uow, commitment_id=row["commitment_id"], action=Action.WITHDRAW, note="Salah daerah")
    assert [kind for op, kind in store.writes if op == "cancel_timers"] == [ops.REMINDER, ops.OVERDUE]
    assert [type(p) for p in outbox.payloads()] == [CommitmentWithdrawn]


REFUSALS = {
    "figures disagree with the calculator": (
        OPERATOR, S.REQUESTED, Invalid, "expected Rp3.024.000.000",
        lambda uow, cid: ops.submit(uow, region_code=REGION, body=body(total_rp=1), fiscal_year=2026,
                                    submission_id="s", channel="http")),
    "another year": (
        OPERATOR, S.REQUESTED, Invalid, "fiscal_year 2025 is not the year being collected (2026)",
        lambda uow, cid: ops.submit(uow, region_code=REGION, body=body(fiscal_year=2025), fiscal_year=2026,
                                    submission_id="s", channel="http")),
    "a region operator for another region": (
        Actor("key-dompu", Role.REGION_OPERATOR, "52.05"), S.REQUESTED, Forbidden,
        "a key for region 52.05 may not act for region 52.04",
        lambda uow, cid: ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026, submission_id="s",
                                    channel="http")),
    "submitting an acknowledged commitment": (
        OPERATOR, S.ACKNOWLEDGED, IllegalTransition, "cannot submit a commitment that is acknowledged",
        lambda uow, cid: ops.submit(uow, region_code=REGION, body=body(), fiscal_year=2026, submission_id="s",
                                    channel="http")),
    "a stale If-Match": (
        DISNAKER, S.SUBMITTED, StaleVersion, "version is 1 (status submitted), not 7",
        lambda uow, cid: ops.review(uow, commitment_id=cid, action=Action.VERIFY, expected_version=7)),
    "BPJS verifying": (
        BPJS, S.SUBMITTED, ActionForbidden, "role bpjs_reviewer may not verify",
        lambda uow, cid: ops.review(uow, commitment_id=cid, action=Action.VERIFY)),
    "a region operator reviewing another region": (
        Actor("key-dompu", Role.REGION_OPERATOR, "52.05"), S.DRAFT, Forbidden, "may not act on region 52.04",
        lambda uow, cid: ops.review(uow, commitment_id=cid, action=Action.WITHDRAW)),
    "a return without a reason": (
        DISNAKER, S.SUBMITTED, Invalid, "needs at least one reason",
        lambda uow, cid: ops.review(uow, commitment_id=cid, action=Action.RETURN, reasons=[" "])),
    "an unknown commitment": (
        DISNAKER, S.SUBMITTED, NotFound, "no commitment",
        lambda uow, cid: ops.review(uow, commitment_id=uuid.uuid4(), action=Action.VERIFY)),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refusal_writes_nothing_and_emits_nothing(case: str) -> None:
    """Each rule refuses with its member of the error family (HTTP status, dead-letter reason), before any write."""
    actor, status, error, message, call = REFUSALS[case]
    row = commitment(status)
    store = MemoryStore(row)
    uow, outbox = fake_unit_of_work(store, actor=actor)
    with pytest.raises(error, match=re.escape(message)):
        await call(uow, row["commitment_id"])
    assert store.writes == [] and outbox.emitted == []
    assert row["status"] is status and row["version"] == 1


async def test_conflicts_name_the_current_state_and_forbidden_does_not() -> None:
    """409/412 answers carry current_status (the pages and clients read it); a 403 carries the reason alone."""
    row = commitment(S.VERIFIED)
    uow, _ = fake_unit_of_work(MemoryStore(row), actor=DISNAKER)
    with pytest.raises(IllegalTransition) as conflict:
        await ops.review(uow, commitment_id=row["commitment_id"], action=Action.RETURN, reasons=["x"])
    assert (conflict.value.http_status, conflict.value.detail) == (409, {"current_status": "verified"})
    with pytest.raises(StaleVersion) as stale:
        await ops.review(uow, commitment_id=row["commitment_id"], action=Action.RETURN, reasons=["x"],
                         expected_version=3)
    assert (stale.value.http_status, stale.value.detail) == (412, {"current_status": "verified"})
    uow, _ = fake_unit_of_work(MemoryStore(row), actor=OPERATOR)
    with pytest.raises(ActionForbidden) as forbidden:
        await ops.review(uow, commitment_id=row["commitment_id"], action=Action.ACKNOWLEDGE)
    assert (forbidden.value.http_status, forbidden.value.detail) == (403, {})
