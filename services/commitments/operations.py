"""Use cases shared by the HTTP API, the event handlers and the timers.

Each runs inside the caller's transaction: lock the commitment row (FOR UPDATE), check
the expected state with the pure workflow, write the change, its audit record and its
event (outbox) together. Nothing is written when a rule refuses the command.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.contracts.roles import Role
from shared.contracts.commitments import (CommitmentAcknowledged, CommitmentBody, CommitmentDrafted,
                                          CommitmentOverdue, CommitmentRequested, CommitmentReturned,
                                          CommitmentStatus as S, CommitmentSubmitted, CommitmentVerified,
                                          CommitmentWithdrawn, DeadlineApproaching, DeadlineExtended,
                                          RealizationRecorded, RealizationReported)
from shared.contracts.registry import EventPayload
from shared.platform.envelope import CloudEvent
from shared.platform import timers
from shared.platform.wita import as_wita

from . import calculator, rates, store
from .workflow import AWAITING_SUBMISSION, COMMITTED, Action, IllegalTransition, next_state

Emit = Callable[[EventPayload], Awaitable[CloudEvent]]
REMINDER = "commitments.deadline_reminder"
OVERDUE = "commitments.deadline_overdue"
SYSTEM = "system"


class NotFound(LookupError):
    pass


class InvalidCommitment(ValueError):
    """The content breaks a rule (figures, fiscal year, region): 422 or a dead letter."""


class VersionMismatch(ValueError):
    """If-Match named a version that is no longer current."""

    def __init__(self, message: str, current: S) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True, slots=True)
class Actor:
    id: str          # key id, or the CloudEvent source of a system
    role: Role

    @property
    def label(self) -> str:
        return f"{self.id} ({self.role.value})"


def _check_version(row: asyncpg.Record, expected: int | None) -> None:
    if expected is not None and row["version"] != expected:
        raise VersionMismatch(
            f"commitment changed: version is {row['version']} (status {row['status']}), not {expected}",
            S(row["status"]))


# --- requests and deadlines -------------------------------------------------------------

async def schedule_deadline_timers(conn: asyncpg.Connection, commitment_id: uuid.UUID, deadline: datetime,
                                   leads: Sequence[timedelta], now: datetime) -> None:
    """A reminder per lead (those not already past) and the overdue timer; moves existing ones."""
    await timers.cancel(conn, REMINDER, f"{commitment_id}:")
    payload = {"commitment_id": str(commitment_id), "deadline": deadline.isoformat()}
    for lead in leads:
        due = deadline - lead
        if due > now:
            await timers.schedule(conn, REMINDER, f"{commitment_id}:{int(lead.total_seconds())}", due, payload,
                                  rearm=True)
    await timers.schedule(conn, OVERDUE, str(commitment_id), deadline, payload, rearm=True)


async def open_request(conn: asyncpg.Connection, emit: Emit, *, region_code: str, fiscal_year: int,
                       deadline: datetime, leads: Sequence[timedelta], meeting_id: uuid.UUID | None,
                       actor: Actor, now: datetime) -> tuple[uuid.UUID, bool]:
    """Open the region's commitment request; an existing one is left as it is (returns created=False)."""
    commitment_id = uuid.uuid4()
    if not await store.insert_commitment(conn, commitment_id=commitment_id, region_code=region_code,
                                         fiscal_year=fiscal_year, deadline=deadline, meeting_id=meeting_id,
                                         status=S.REQUESTED):
        existing = await store.get_by_region(conn, region_code, fiscal_year)
        return existing["commitment_id"], False
    await schedule_deadline_timers(conn, commitment_id, deadline, leads, now)
    event = await emit(CommitmentRequested(commitment_id=commitment_id, region_code=region_code,
                                           fiscal_year=fiscal_year, deadline=as_wita(deadline), meeting_id=meeting_id))
    await store.audit(conn, commitment_id=commitment_id, at=now, actor=actor.id, role=actor.role.value,
                      action="request", from_status=None, to_status=S.REQUESTED, event_id=event.id)
    return commitment_id, True


async def extend_deadline(conn: asyncpg.Connection, emit: Emit, *, commitment_id: uuid.UUID, deadline: datetime,
                          leads: Sequence[timedelta], reason: str, actor: Actor, now: datetime,
                          expected_version: int | None = None) -> asyncpg.Record:
    row = await store.lock(conn, commitment_id)
    if row is None:
        raise NotFound(f"no commitment {commitment_id}")
    _check_version(row, expected_version)
    status = S(row["status"])
    if status not in AWAITING_SUBMISSION:
        raise IllegalTransition(f"cannot extend the deadline of a commitment that is {status.value}; "
                                f"only while awaiting submission ({', '.join(sorted(AWAITING_SUBMISSION))})", status)
    if deadline <= row["deadline"]:
        raise InvalidCommitment(f"new deadline {as_wita(deadline).isoformat()} is not after the current "
                                f"{as_wita(row['deadline']).isoformat()}")
    if deadline <= now:
        raise InvalidCommitment("new deadline must be in the future")
    await store.set_deadline(conn, commitment_id, deadline, now)
    await schedule_deadline_timers(conn, commitment_id, deadline, leads, now)
    event = await emit(DeadlineExtended(commitment_id=commitment_id, region_code=row["region_code"],
                                        fiscal_year=row["fiscal_year"], previous_deadline=as_wita(row["deadline"]),
                                        deadline=as_wita(deadline), actor=actor.label))
    await store.audit(conn, commitment_id=commitment_id, at=now, actor=actor.id, role=actor.role.value,
                      action="extend_deadline", from_status=status, to_status=status, reason=reason,
                      event_id=event.id)
    return await store.get(conn, commitment_id)


async def fire_reminder(conn: asyncpg.Connection, emit: Emit, payload: dict[str, Any], now: datetime) -> bool:
    row = await store.lock(conn, uuid.UUID(payload["commitment_id"]))
    # A reminder that comes due only after the deadline (a wheel that was down) is moot.
    if row is None or not _still_due(row, payload) or now >= row["deadline"]:
        return False
    await emit(DeadlineApproaching(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                   fiscal_year=row["fiscal_year"], deadline=as_wita(row["deadline"]),
                                   status=S(row["status"])))
    return True


async def fire_overdue(conn: asyncpg.Connection, emit: Emit, payload: dict[str, Any], now: datetime) -> bool:
    """Escalate to the province: the overdue event (routed to provincial staff) and an audit record."""
    row = await store.lock(conn, uuid.UUID(payload["commitment_id"]))
    if row is None or not _still_due(row, payload) or now < row["deadline"]:
        return False
    await store.mark_overdue(conn, row["commitment_id"], now)
    event = await emit(CommitmentOverdue(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                         fiscal_year=row["fiscal_year"], deadline=as_wita(row["deadline"]),
                                         status=S(row["status"])))
    await store.audit(conn, commitment_id=row["commitment_id"], at=now, actor=SYSTEM, role=SYSTEM,
                      action="escalate_overdue", from_status=row["status"], to_status=row["status"],
                      reason="deadline passed without a submission; escalated to the province", event_id=event.id)
    return True


def _still_due(row: asyncpg.Record, payload: dict[str, Any]) -> bool:
    # A timer scheduled for an older deadline, or a commitment already submitted, stays silent.
    same_deadline = row["deadline"] == datetime.fromisoformat(payload["deadline"])
    return same_deadline and S(row["status"]) in AWAITING_SUBMISSION


# --- drafts and submissions -------------------------------------------------------------

def _validate_body(body: CommitmentBody, row: asyncpg.Record, fiscal_year: int) -> calculator.BodyFigures:
    if body.region_code != row["region_code"]:
        raise InvalidCommitment(f"body is for region {body.region_code}, not {row['region_code']}")
    if body.fiscal_year != fiscal_year:
        raise InvalidCommitment(f"fiscal_year {body.fiscal_year} is not the year being collected ({fiscal_year})")
    version = rates.for_fiscal_year(rates.load(), body.fiscal_year)
    try:
        return calculator.check_body(body, version)
    except calculator.CalculationError as exc:
        raise InvalidCommitment(f"{exc} [rates {version.version}]") from None


async def _locked_for_region(conn: asyncpg.Connection, region_code: str, fiscal_year: int) -> asyncpg.Record:
    row = await store.lock_by_region(conn, region_code, fiscal_year)
    if row is None:
        raise NotFound(f"no commitment request is open for region {region_code}, fiscal year {fiscal_year}")
    return row


def _body_columns(body: CommitmentBody, figures: calculator.BodyFigures) -> dict[str, Any]:
    return {"body": body.model_dump(mode="json"), "total_workers": figures.total_workers,
            "total_rp": figures.total_rp, "max_months": max(line.months for line in body.lines),
            "worker_months": sum(line.workers * line.months for line in body.lines)}


async def save_draft(conn: asyncpg.Connection, emit: Emit, *, body: CommitmentBody, fiscal_year: int,
                     actor: Actor, now: datetime, expected_version: int | None = None) -> asyncpg.Record:
    row = await _locked_for_region(conn, body.region_code, fiscal_year)
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, Action.SAVE_DRAFT, actor.role)
    figures = _validate_body(body, row, fiscal_year)
    version = rates.for_fiscal_year(rates.load(), fiscal_year)
    await store.save_body(conn, row["commitment_id"], status=target, rates_version=version.version,
                          revision=row["revision"], at=now, **_body_columns(body, figures))
    event = await emit(CommitmentDrafted(commitment_id=row["commitment_id"], region_code=row["region_code"],
                                         fiscal_year=fiscal_year, actor=actor.label, at=now,
                                         total_workers=figures.total_workers, total_rp=figures.total_rp))
    await store.audit(conn, commitment_id=row["commitment_id"], at=now, actor=actor.id, role=actor.role.value,
                      action=Action.SAVE_DRAFT, from_status=current, to_status=target, event_id=event.id)
    return await store.get(conn, row["commitment_id"])


async def submit(conn: asyncpg.Connection, emit: Emit, *, region_code: str, body: CommitmentBody | None,
                 fiscal_year: int, submission_id: str, channel: str, actor: Actor, now: datetime,
                 expected_version: int | None = None) -> tuple[asyncpg.Record, bool]:
    """Submit (or resubmit) the region's commitment. A known submission_id changes nothing (returns False)."""
    row = await _locked_for_region(conn, region_code, fiscal_year)
    if await store.submission_exists(conn, submission_id):
        return row, False
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, Action.SUBMIT, actor.role)
    if body is None:
        if row["body"] is None:
            raise InvalidCommitment("nothing to submit: send the commitment or save a draft first")
        body = CommitmentBody.model_validate(row["body"])
    figures = _validate_body(body, row, fiscal_year)
    version = rates.for_fiscal_year(rates.load(), fiscal_year)
    revision = row["revision"] + 1
    columns = _body_columns(body, figures)
    await store.save_body(conn, row["commitment_id"], status=target, rates_version=version.version,
                          revision=revision, at=now, **columns)
    await store.insert_submission(conn, submission_id=submission_id, commitment_id=row["commitment_id"],
                                  revision=revision, channel=channel, submitted_by=actor.id, body=columns["body"],
                                  at=now)
    event = await emit(CommitmentSubmitted(**body.model_dump(), commitment_id=row["commitment_id"],
                                           revision=revision, submitted_by=actor.label, channel=channel))
    await store.audit(conn, commitment_id=row["commitment_id"], at=now, actor=actor.id, role=actor.role.value,
                      action="resubmit" if current is S.RETURNED else Action.SUBMIT,
                      from_status=current, to_status=target, event_id=event.id)
    return await store.get(conn, row["commitment_id"]), True


# --- review ------------------------------------------------------------------------------

async def review(conn: asyncpg.Connection, emit: Emit, *, commitment_id: uuid.UUID, action: Action,
                 actor: Actor, now: datetime, note: str = "", reasons: Sequence[str] = (),
                 expected_version: int | None = None, region_of_actor: str | None = None) -> asyncpg.Record:
    """Verify, return, acknowledge or withdraw; the loser of a race gets IllegalTransition."""
    row = await store.lock(conn, commitment_id)
    if row is None:
        raise NotFound(f"no commitment {commitment_id}")
    if region_of_actor is not None and row["region_code"] != region_of_actor:
        raise PermissionError(f"a key for region {region_of_actor} may not act on region {row['region_code']}")
    _check_version(row, expected_version)
    current = S(row["status"])
    target = next_state(current, action, actor.role)
    if action is Action.RETURN and not [r for r in reasons if r.strip()]:
        raise InvalidCommitment("returning a commitment needs at least one reason")
    await store.set_status(conn, commitment_id, target, now)
    common = dict(commitment_id=commitment_id, region_code=row["region_code"], fiscal_year=row["fiscal_year"],
                  actor=actor.label, at=now, total_workers=row["total_workers"], total_rp=row["total_rp"])
    payload: EventPayload
    if action is Action.VERIFY:
        payload = CommitmentVerified(**common, note=note)
    elif action is Action.ACKNOWLEDGE:
        payload = CommitmentAcknowledged(**common, note=note)
    elif action is Action.RETURN:
        payload = CommitmentReturned(**common, reasons=list(reasons))
    else:
        payload = CommitmentWithdrawn(**common, reason=note)
        await timers.cancel(conn, REMINDER, f"{commitment_id}:")
        await timers.cancel(conn, OVERDUE, str(commitment_id))
    event = await emit(payload)
    await store.audit(conn, commitment_id=commitment_id, at=now, actor=actor.id, role=actor.role.value,
                      action=action, from_status=current, to_status=target,
                      reason="; ".join(reasons) if reasons else note, event_id=event.id)
    return await store.get(conn, commitment_id)


# --- realization -------------------------------------------------------------------------

async def record_realization(conn: asyncpg.Connection, emit: Emit, report: RealizationReported,
                             fiscal_year: int, *, sent_at: datetime) -> bool:
    """Track a BPJS figure against the commitment; True when it replaced the figure in place.

    A report_id applies once: seen before, it changes nothing (even if a correction has
    since replaced it). Of the reports for one region, segment and month, the one with the
    latest `reported_at` (else `sent_at`, the CloudEvent time; ties: the greater report_id)
    is in place: a late older report is remembered and changes nothing.
    """
    if report.fiscal_year != fiscal_year:
        raise InvalidCommitment(f"fiscal_year {report.fiscal_year} is not the year being tracked ({fiscal_year})")
    if report.period.year != report.fiscal_year or report.period.day != 1:
        raise InvalidCommitment(f"period {report.period} must be the first day of a month in {report.fiscal_year}")
    if report.workers_enrolled > calculator.MAX_WORKERS_PER_LINE:
        raise InvalidCommitment(f"workers_enrolled {report.workers_enrolled:,} is beyond any NTB figure")
    reported_at = report.reported_at or sent_at
    if not await store.claim_realization_report(conn, report_id=report.report_id, region_code=report.region_code,
                                                fiscal_year=fiscal_year, segment=report.segment,
                                                period=report.period, reported_at=reported_at):
        return False
    # Lock the region's commitment (if any) so its events keep their order.
    row = await store.lock_by_region(conn, report.region_code, fiscal_year)
    if not await store.upsert_realization(conn, region_code=report.region_code, fiscal_year=fiscal_year,
                                          segment=report.segment, period=report.period, report_id=report.report_id,
                                          reported_at=reported_at, workers_enrolled=report.workers_enrolled,
                                          contributions_paid_rp=report.contributions_paid_rp):
        return False
    workers, paid = (await store.realization_totals(conn, fiscal_year, report.region_code))[report.region_code]
    committed = row["total_workers"] if row is not None and S(row["status"]) in COMMITTED else 0
    await emit(RealizationRecorded(region_code=report.region_code, fiscal_year=fiscal_year,
                                   committed_workers=committed, realized_workers=workers,
                                   contributions_paid_rp=paid))
    return True
