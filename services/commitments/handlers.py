"""Event and timer entrypoints: translate the payload, name who acts, call the use case.

A refusal (shared.platform.errors) propagates: the consumer dead-letters the event with its
message as the reason, the timer wheel gives up on the timer. `terms` is bound in bootstrap.
"""

from __future__ import annotations

from shared.contracts.commitments import CommitmentBody, RealizationReported, SubmitCommitment
from shared.contracts.invitations import MeetingConcluded
from shared.contracts.regions import regions
from shared.contracts.roles import Role
from shared.platform import sender_region
from shared.platform.consumer import HandlerContext
from shared.platform.logging import get_logger
from shared.platform.timers import Timer, TimerContext
from shared.platform.unit_of_work import Actor

from . import operations as ops
from .terms import Terms

log = get_logger(__name__)


async def meeting_concluded(event: MeetingConcluded, ctx: HandlerContext, *, terms: Terms) -> None:
    """The Rakor ended: ask every region for its commitment (existing requests are kept)."""
    uow = ctx.acting_as(Actor(ctx.event.source, Role.ORGANIZER))
    deadline = terms.deadline_for(event.concluded_at)  # from the conclusion: a redelivery yields the same one
    for code in regions():
        commitment_id, created = await ops.open_request(
            uow, region_code=code, fiscal_year=terms.fiscal_year, deadline=deadline, leads=terms.reminder_leads,
            meeting_id=event.meeting_id)
        log.info("commitment request", region_code=code, commitment_id=str(commitment_id), created=created)


async def submit_commitment(command: SubmitCommitment, ctx: HandlerContext, *, terms: Terms) -> None:
    """A regional system submitted a commitment (over its own region's topic)."""
    body = CommitmentBody.model_validate(command.model_dump(exclude={"submission_id"}))
    sender_region.check(ctx.topic, body.region_code)  # a regency submits only for itself
    uow = ctx.acting_as(Actor(ctx.event.source, Role.REGION_OPERATOR, body.region_code))
    row, fresh = await ops.submit(
        uow, region_code=body.region_code, body=body, fiscal_year=terms.fiscal_year,
        # Senders' ids are only unique per region: scope them so two regions never collide.
        submission_id=f"event:{body.region_code}:{command.submission_id}", channel="event")
    log.info("commitment submitted" if fresh else "duplicate submission ignored",
             commitment_id=str(row["commitment_id"]), submission_id=command.submission_id)


async def realization_reported(report: RealizationReported, ctx: HandlerContext, *, terms: Terms) -> None:
    fresh = await ops.record_realization(ctx, report, terms.fiscal_year, sent_at=ctx.event.time)
    log.info("realization recorded" if fresh else "realization report seen before or superseded; no change",
             report_id=report.report_id)


async def deadline_reminder(timer: Timer, ctx: TimerContext) -> None:
    if await ops.fire_reminder(ctx, timer.payload):
        log.info("deadline reminder sent", commitment_id=timer.payload["commitment_id"])


async def deadline_overdue(timer: Timer, ctx: TimerContext) -> None:
    if await ops.fire_overdue(ctx, timer.payload):
        log.warning("commitment overdue; escalated to the province", commitment_id=timer.payload["commitment_id"])
