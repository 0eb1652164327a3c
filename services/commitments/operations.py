"""Use cases shared by the HTTP API, the pages, the event handlers and the timers.

Each is `async def verb(uow, ...)` and runs in the unit of work's transaction: lock the
commitment row (FOR UPDATE), check the expected state with the pure workflow, write the
change, its audit record and its event (outbox) together. A refusal raises one of the
shared.platform.errors family before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from shared.contracts.commitments import (
    CommitmentAcknowledged,
    CommitmentBody,
    CommitmentDrafted,
    CommitmentOverdue,
    CommitmentRequested,
    CommitmentReturned,
    CommitmentStatus as S,
    CommitmentSubmitted,
    CommitmentVerified,
    CommitmentWithdrawn,
    DeadlineApproaching,
    DeadlineExtended,
    RealizationRecorded,
    RealizationReported,
)
from shared.contracts.registry import EventPayload
from shared.contracts.roles import Role
from shared.platform.errors import Forbidden, Invalid, NotFound, StaleVersion
from shared.platform.unit_of_work import Actor, UnitOfWork
from shared.platform.wita import as_wita

from . import calculator, rates
from .store import Store
from .workflow import AWAITING_SUBMISSION, COMMITTED, Action, IllegalTransition, next_state

REMINDER = "commitments.deadline_reminder"
OVERDUE = "commitments.deadline_overdue"


class Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


def _check_version(row: Row, expected: int | None) -> None:
    if expected is not None and row["version"] != expected:
        raise StaleVersion(
            f"commitment changed: version is {row['version']} (status {row['status']}), not {expected}",
            current_status=row["status"])


def _role(actor: Actor) -> Role:
    if actor.role is None:
        raise Forbidden("the service itself takes no part in the review workflow")
    return actor.role


def _check_region(actor: Actor, region_code: str) -> None:
    """A region operator acts for its own region only (the edges check it first, this is the rule)."""
    if actor.role is Role.REGION_OPERATOR and actor.region_code != region_code:
        raise Forbidden(f"a key for region {actor.region_code} may not act for region {region_code}")


async def _audit(uow: UnitOfWork[Store], commitment_id: uuid.UUID, action: str, from_status: str | None,
                 to_status: str, *, reason: str = "", event_id: str | None = None) -> None:
    actor = uow.actor
    await uow.store.audit(commitment_id=commitment_id, at=uow.now, actor=actor.id,
                          role=actor.role.value if actor.role is not None else "system", action=action,
                          from_status=from_status, to_status=to_status, reason=reason, event_id=event_id)


async def _locked(uow: UnitOfWork[Store], commitment_id: uuid.UUID) -> asyncpg.Record:
    row = await uow.store.lock(commitment_id)
    if row is None:
        raise NotFound(f"no commitment {commitment_id}")
    return row


async def _current(uow: UnitOfWork[Store], commitment_id: uuid.UUID) -> asyncpg.Record:
    row = await uow.store.get(commitment_id)
    assert row is not None  # locked in this transaction
    return row


# --- requests and deadlines -------------------------------------------------------------

async def schedule_deadline_timers(uow: UnitOfWork[Store], commitment_id: uuid.UUID, deadline: datetime,
                                   leads: Sequence[timedelta]) -> None:
    """A reminder per lead (those not already past) and the overdue timer; moves existing ones."""
    await uow.store.cancel_timers(REMINDER, f"{commitment_id}:")
    payload = {"commitment_id": str(commitment_id), "deadline": deadline.isoformat()}
    for lead in leads:
        due = deadline - lead
        if due > uow.now:
            await uow.store.schedule_timer(REMINDER, f"{commitment_id}:{int(lead.total_seconds())}", due, payload)
    await uow.store.schedule_timer(OVERDUE, str(commitment_id), deadline, payload)


async def open_request(uow: UnitOfWork[Store], *, region_code: str, fiscal_year: int, deadline: datetime,
                       leads: Sequence[timedelta], meeting_id: uuid.UUID | None) -> tuple[uuid.UUID, bool]:
    """Open the region's commitment request; an existing one is left as it is (returns created=False)."""
    commitment_id = uuid.uuid4()
    if not await uow.store.insert_commitment(commitment_id=commitment_id, region_code=region_code,
                                             fiscal_year=fiscal_year, deadline=deadline, meeting_id=meeting_id,
                                             status=S.REQUESTED):
        existing = await uow.store.get_by_region(region_code, fiscal_year)
        assert existing is not None  # the insert met it
        return existing["commitment_id"], False
    await schedule_deadline_timers(uow, commitment_id, deadline, leads)
    event = await uow.emit(CommitmentRequested(commitment_id=commitment_id, region_code=region_code,
                                               fiscal_year=fiscal_year, deadline=as_wita(deadline),
                                               meeting_id=meeting_id))
    await _audit(uow, commitment_id, "request", None, S.REQUESTED, event_id=event.id)
    return commitment_id, True


async def extend_deadline(uow: UnitOfWork[Store], *, commitment_id: uuid.UUID, deadline: datetime,
                          leads: Sequence[timedelta], reason: str,
                          expected_version: int | None = None) -> asyncpg.Record:
    row = await _locked(uow, commitment_id)
    _check_version(row, expected_version)
    status = S(row["status"])
    if status not in AWAITING_SUBMISSION:
        raise IllegalTransition(f"cannot extend the deadline of a commitment that is {status.value}; "
                                f"only while awaiting submission ({', '.join(sorted(AWAITING_SUBMISSION))})", status)
    if deadline <= row["deadline"]:
        raise Invalid(f"new deadline {as_wita(deadline).isoformat()} is not after the current "
                      f"{as_wita(row['deadline']).isoformat()}")
    if deadline <= uow.now:
        raise Invalid("new deadline must be in the future")
    await uow.store.set_deadline(commitment_id, deadline, uow.now)
    await schedule_deadline_timers(uow, commitment_id, deadline, leads)
    event = await uow.emit(DeadlineExtended(commitment_id=commitment_id, region_code=row["region_code"],
                                            fiscal_year=row["fiscal_year"], previous_deadline=as_wita(row["deadline"]),
                                            deadline=as_wita(deadline), actor=uow.actor.label))
    await _audit(uow, commitment_id, "extend_deadline", status, status, reason=reason, event_id=event.id)
    return await _current(uow, commitment_id)


async def fire_reminder(uow: UnitOfWork[Store], payload: dict[str, Any]) -> bool:
    row = await uow.store.lock(uuid.UUID(payload["commitment_id"]))
    # A reminder that comes due only after the deadline (a wheel that was down) is moot.
    if row is None or not _still_due(row, payload) or uow.now >= row["deadline"]:
        return False
    await uow.emit(DeadlineApproaching(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                       fiscal_year=row["fiscal_year"], deadline=as_wita(row["deadline"]),
                                       status=S(row["status"])))
    return True


async def fire_overdue(uow: UnitOfWork[Store], payload: dict[str, Any]) -> bool:
    """Escalate to the province: the overdue event (routed to provincial staff) and an audit record."""
    row = await uow.store.lock(uuid.UUID(payload["commitment_id"]))
    if row is None or not _still_due(row, payload) or uow.now < row["deadline"]:
        return False
    await uow.store.mark_overdue(row["commitment_id"], uow.now)
    event = await uow.emit(CommitmentOverdue(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                             fiscal_year=row["fiscal_year"], deadline=as_wita(row["deadline"]),
                                             status=S(row["status"])))
    await _audit(uow, row["commitment_id"], "escalate_overdue", row["status"], row["status"],
                 reason="deadline passed without a submission; escalated to the province", event_id=event.id)
    return True


def _still_due(row: Row, payload: dict[str, Any]) -> bool:
    # A timer scheduled for an older deadline, or a commitment already submitted, stays silent.
    same_deadline = row["deadline"] == datetime.fromisoformat(payload["deadline"])
    return same_deadline and S(row["status"]) in AWAITING_SUBMISSION


# --- drafts and submissions -------------------------------------------------------------

def _validate_body(body: CommitmentBody, row: Row, fiscal_year: int) -> calculator.BodyFigures:
    if body.region_code != row["region_code"]:
        raise Invalid(f"body is for region {body.region_code}, not {row['region_code']}")
    if body.fiscal_year != fiscal_year:
        raise Invalid(f"fiscal_year {body.fiscal_year} is not the year being collected ({fiscal_year})")
    version = rates.for_fiscal_year(rates.load(), body.fiscal_year)
    try:
        return calculator.check_body(body, version)
    except calculator.CalculationError as exc:
        raise Invalid(f"{exc} [rates {version.version}]") from None


async def _locked_for_region(uow: UnitOfWork[Store], region_code: str, fiscal_year: int) -> asyncpg.Record:
    _check_region(uow.actor, region_code)
    row = await uow.store.lock_by_region(region_code, fiscal_year)
    if row is None:
        raise NotFound(f"no commitment request is open for region {region_code}, fiscal year {fiscal_year}")
    return row


def _body_columns(body: CommitmentBody, figures: calculator.BodyFigures) -> dict[str, Any]:
    return {"body": body.model_dump(mode="json"), "total_workers": figures.total_workers,
            "total_rp": figures.total_rp, "max_months": max(line.months for line in body.lines),
            "worker_months": sum(line.workers * line.months for line in body.lines)}


async def save_draft(uow: UnitOfWork[Store], *, body: CommitmentBody, fiscal_year: int,
                     expected_version: int | None = None) -> asyncpg.Record:
    row = await _locked_for_region(uow, body.region_code, fiscal_year)
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, Action.SAVE_DRAFT, _role(uow.actor))
    figures = _validate_body(body, row, fiscal_year)
    version = rates.for_fiscal_year(rates.load(), fiscal_year)
    await uow.store.save_body(row["commitment_id"], status=target, rates_version=version.version,
                              revision=row["revision"], at=uow.now, **_body_columns(body, figures))
    event = await uow.emit(CommitmentDrafted(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                             fiscal_year=fiscal_year, actor=uow.actor.label, at=uow.now,
                                             total_workers=figures.total_workers, total_rp=figures.total_rp))
    await _audit(uow, row["commitment_id"], Action.SAVE_DRAFT, current, target, event_id=event.id)
    return await _current(uow, row["commitment_id"])


async def submit(uow: UnitOfWork[Store], *, region_code: str, body: CommitmentBody | None, fiscal_year: int,
                 submission_id: str, channel: str,
                 expected_version: int | None = None) -> tuple[asyncpg.Record, bool]:
    """Submit (or resubmit) the region's commitment. A known submission_id changes nothing (returns False)."""
    row = await _locked_for_region(uow, region_code, fiscal_year)
    if await uow.store.submission_exists(submission_id):
        return row, False
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, Action.SUBMIT, _role(uow.actor))
    if body is None:
        if row["body"] is None:
            raise Invalid("nothing to submit: send the commitment or save a draft first")
        body = CommitmentBody.model_validate(row["body"])
    figures = _validate_body(body, row, fiscal_year)
    version = rates.for_fiscal_year(rates.load(), fiscal_year)
    revision = row["revision"] + 1
    columns = _body_columns(body, figures)
    await uow.store.save_body(row["commitment_id"], status=target, rates_version=version.version,
                              revision=revision, at=uow.now, **columns)
    await uow.store.insert_submission(submission_id=submission_id, commitment_id=row["commitment_id"],
                                      revision=revision, channel=channel, submitted_by=uow.actor.id,
                                      body=columns["body"], at=uow.now)
    event = await uow.emit(CommitmentSubmitted(**body.model_dump(), commitment_id=row["commitment_id"],
                                               revision=revision, submitted_by=uow.actor.label, channel=channel))
    await _audit(uow, row["commitment_id"], "resubmit" if current is S.RETURNED else Action.SUBMIT, current, target,
                 event_id=event.id)
    return await _current(uow, row["commitment_id"]), True


# --- review ------------------------------------------------------------------------------

async def review(uow: UnitOfWork[Store], *, commitment_id: uuid.UUID, action: Action, note: str = "",
                 reasons: Sequence[str] = (), expected_version: int | None = None) -> asyncpg.Record:
    """Verify, return, acknowledge or withdraw; the loser of a race gets IllegalTransition."""
    row = await _locked(uow, commitment_id)
    actor = uow.actor
    if actor.role is Role.REGION_OPERATOR and row["region_code"] != actor.region_code:
        raise Forbidden(f"a key for region {actor.region_code} may not act on region {row['region_code']}")
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, action, _role(actor))
    if action is Action.RETURN and not [r for r in reasons if r.strip()]:
        raise Invalid("returning a commitment needs at least one reason")
    await uow.store.set_status(commitment_id, target, uow.now)
    common = dict(commitment_id=commitment_id, region_code=row["region_code"], fiscal_year=row["fiscal_year"],
                  actor=actor.label, at=uow.now, total_workers=row["total_workers"], total_rp=row["total_rp"])
    payload: EventPayload
    if action is Action.VERIFY:
        payload = CommitmentVerified(**common, note=note)
    elif action is Action.ACKNOWLEDGE:
        payload = CommitmentAcknowledged(**common, note=note)
    elif action is Action.RETURN:
        payload = CommitmentReturned(**common, reasons=list(reasons))
    else:
        payload = CommitmentWithdrawn(**common, reason=note)
        await uow.store.cancel_timers(REMINDER, f"{commitment_id}:")
        await uow.store.cancel_timers(OVERDUE, str(commitment_id))
    event = await uow.emit(payload)
    await _audit(uow, commitment_id, action, current, target, reason="; ".join(reasons) if reasons else note,
                 event_id=event.id)
    return await _current(uow, commitment_id)


# --- realization -------------------------------------------------------------------------

async def record_realization(uow: UnitOfWork[Store], report: RealizationReported, fiscal_year: int, *,
                             sent_at: datetime) -> bool:
    """Track a BPJS figure against the commitment; True when it replaced the figure in place.

    A report_id applies once: seen before, it changes nothing (even if a correction has
    since replaced it). Of the reports for one region, segment and month, the one with the
    latest `reported_at` (else `sent_at`, the CloudEvent time; ties: the greater report_id)
    is in place: a late older report is remembered and changes nothing.
    """
    if report.fiscal_year != fiscal_year:
        raise Invalid(f"fiscal_year {report.fiscal_year} is not the year being tracked ({fiscal_year})")
    if report.period.year != report.fiscal_year or report.period.day != 1:
        raise Invalid(f"period {report.period} must be the first day of a month in {report.fiscal_year}")
    if report.workers_enrolled > calculator.MAX_WORKERS_PER_LINE:
        raise Invalid(f"workers_enrolled {report.workers_enrolled:,} is beyond any NTB figure")
    store = uow.store
    reported_at = report.reported_at or sent_at
    if not await store.claim_realization_report(report_id=report.report_id, region_code=report.region_code,
                                                fiscal_year=fiscal_year, segment=report.segment,
                                                period=report.period, reported_at=reported_at):
        return False
    # Lock the region's commitment (if any) so its events keep their order.
    row = await store.lock_by_region(report.region_code, fiscal_year)
    if not await store.upsert_realization(region_code=report.region_code, fiscal_year=fiscal_year,
                                          segment=report.segment, period=report.period, report_id=report.report_id,
                                          reported_at=reported_at, workers_enrolled=report.workers_enrolled,
                                          contributions_paid_rp=report.contributions_paid_rp):
        return False
    workers, paid = (await store.realization_totals(fiscal_year, report.region_code))[report.region_code]
    committed = row["total_workers"] if row is not None and S(row["status"]) in COMMITTED else 0
    await uow.emit(RealizationRecorded(region_code=report.region_code, fiscal_year=fiscal_year,
                                       committed_workers=committed, realized_workers=workers,
                                       contributions_paid_rp=paid))
    return True
