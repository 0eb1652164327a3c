"""Event and timer entrypoints: translate, call the use case, map refusals to dead letters."""

from __future__ import annotations


from shared.platform import sender_region
from shared.contracts.roles import Role
from shared.platform.consumer import HandlerContext, PermanentError
from shared.contracts.commitments import CommitmentBody, RealizationReported, SubmitCommitment
from shared.contracts.invitations import MeetingConcluded
from shared.platform.logging import get_logger
from shared.contracts.regions import regions
from shared.platform.timers import Clock, Timer, TimerContext

from . import operations as ops
from .settings import CommitmentsSettings
from .workflow import IllegalTransition

log = get_logger(__name__)


class Handlers:
    def __init__(self, settings: CommitmentsSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def meeting_concluded(self, event: MeetingConcluded, ctx: HandlerContext) -> None:
        """The Rakor ended: ask every region for its commitment (existing requests are kept)."""
        s = self._settings
        # The deadline counts from the conclusion, so a redelivered event yields the same one.
        deadline = s.deadline_for(event.concluded_at)
        actor = ops.Actor(ctx.event.source, Role.ORGANIZER)
        for code in regions():
            commitment_id, created = await ops.open_request(
                ctx.conn, ctx.emit, region_code=code, fiscal_year=s.fiscal_year, deadline=deadline,
                leads=s.deadline_reminder_leads, meeting_id=event.meeting_id, actor=actor, now=self._clock())
            log.info("commitment request", region_code=code, commitment_id=str(commitment_id), created=created)

    async def submit_commitment(self, command: SubmitCommitment, ctx: HandlerContext) -> None:
        """A regional system submitted a commitment; refusals go to the dead-letter topic with the reason."""
        body = CommitmentBody.model_validate(command.model_dump(exclude={"submission_id"}))
        sender_region.check(ctx.topic, body.region_code)  # a regency submits only for itself
        actor = ops.Actor(ctx.event.source, Role.REGION_OPERATOR)
        try:
            row, fresh = await ops.submit(
                ctx.conn, ctx.emit, region_code=body.region_code, body=body, fiscal_year=self._settings.fiscal_year,
                # Senders' ids are only unique per region: scope them so two regions never collide.
                submission_id=f"event:{body.region_code}:{command.submission_id}", channel="event", actor=actor,
                now=self._clock())
        except (ops.NotFound, ops.InvalidCommitment, IllegalTransition) as exc:
            raise PermanentError(str(exc)) from exc
        log.info("commitment submitted" if fresh else "duplicate submission ignored",
                 commitment_id=str(row["commitment_id"]), submission_id=command.submission_id)

    async def realization_reported(self, report: RealizationReported, ctx: HandlerContext) -> None:
        try:
            fresh = await ops.record_realization(ctx.conn, ctx.emit, report, self._settings.fiscal_year,
                                                 sent_at=ctx.event.time)
        except ops.InvalidCommitment as exc:
            raise PermanentError(str(exc)) from exc
        log.info("realization recorded" if fresh else "realization report seen before or superseded; no change",
                 report_id=report.report_id)

    async def deadline_reminder(self, timer: Timer, ctx: TimerContext) -> None:
        if await ops.fire_reminder(ctx.conn, lambda p: ctx.outbox.add(ctx.conn, p), timer.payload, ctx.now):
            log.info("deadline reminder sent", commitment_id=timer.payload["commitment_id"])

    async def deadline_overdue(self, timer: Timer, ctx: TimerContext) -> None:
        if await ops.fire_overdue(ctx.conn, lambda p: ctx.outbox.add(ctx.conn, p), timer.payload, ctx.now):
            log.warning("commitment overdue; escalated to the province", commitment_id=timer.payload["commitment_id"])


