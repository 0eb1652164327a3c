"""Consumers: every handled event is journaled, routed, and turned into delivery intents.

Nothing is sent here. In the consuming transaction each (event, recipient, channel) gets
one `deliveries` row, already rendered: pending for the sender, or failed at once with
the reason (invalid address, template error) and a DeliveryFailed event. Rules marked
`digest` add digest items instead.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any

from shared.platform.consumer import HandlerContext
from shared.contracts.notifications import Channel, DeliveryFailed
from shared.contracts.invitations import InvitationIssued
from shared.contracts.registry import EventPayload
from shared.platform.envelope import CloudEvent
from shared.platform.logging import get_logger, message_context
from shared.platform.outbox import Outbox
from shared.platform import tracecontext
from shared.contracts.regions import regions
from shared.platform.wita import as_wita

from . import domain, journal, store
from .deliveries import Delivery
from .domain import Recipient, Rule, Target
from .ics import invitation_ics
from .rendering import Renderer, Rendered, TemplateFailure, render_each
from .settings import NotificationsSettings

log = get_logger(__name__)


def region_name(code: str | None) -> str | None:
    return regions()[code].name if code in regions() else None


def invitee_of(payload: EventPayload) -> Recipient | None:
    contact = getattr(payload, "invitee", None)
    invitation_id = getattr(payload, "invitation_id", None)
    if contact is None or invitation_id is None:
        return None
    return Recipient(
        recipient_id=f"invitee:{invitation_id}", name=contact.name, title=contact.title, role="invitee",
        region_code=getattr(payload, "region_code", None), email=contact.email, webhook_url=contact.webhook_url,
        channels=(Channel.EMAIL, Channel.WEBHOOK), invitation_id=str(invitation_id),
    )


# Calendar entries: the invitation creates it, a reschedule moves it, a cancellation removes it.
CALENDAR_TYPES = {
    "ntb.invitations.invitation.issued.v1": "request",
    "ntb.invitations.invitation.rescheduled.v1": "update",
    "ntb.invitations.meeting.cancelled.v1": "cancel",
}
SEQUENCE_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Router:
    """The consumer handler for every routed type (and the journal for every handled one)."""

    def __init__(self, rules: list[Rule], renderer: Renderer, settings: NotificationsSettings,
                 metrics: Any = None) -> None:
        self._metrics = metrics
        self._rules = rules
        self._renderer = renderer
        self._s = settings

    async def handle(self, payload: EventPayload, ctx: HandlerContext) -> None:
        # Rows are deferred to the end of the consumed batch (ctx.deferred): one statement
        # per table per batch instead of per event (docs/performance.md, B4).
        ctx.deferred("notifications.journal", journal.write).append(journal.entry(payload, ctx.event))
        region_code = getattr(payload, "region_code", None)
        invitee = invitee_of(payload)
        if isinstance(payload, InvitationIssued):
            # Written at once: a later event of the same batch may address the meeting's invitees.
            await store.remember_invitee(ctx.conn, invitation_id=payload.invitation_id, meeting_id=payload.meeting_id,
                                         region_code=region_code, contact=payload.invitee,
                                         supersedes=payload.delegated_from)
        rules = domain.rules_for(self._rules, ctx.event.type)
        if not rules:
            return
        if "notifications.directory" not in ctx.cache:  # read once per consumed batch, not per event
            ctx.cache["notifications.directory"] = await store.directory(ctx.conn)
        people_dir: list[Recipient] = ctx.cache["notifications.directory"]
        invited: list[Recipient] = []
        if any(r.meeting_invitees for r in rules) and hasattr(payload, "meeting_id"):
            invited = await store.meeting_invitees(ctx.conn, payload.meeting_id)
        intents = ctx.deferred("notifications.deliveries", functools.partial(self._write_deliveries, ctx.outbox))
        digest = ctx.deferred("notifications.digest", store.add_digest_items)
        day = as_wita(ctx.event.time).date()
        data: dict[str, Any] | None = None
        for rule in rules:
            people = domain.audience(rule, people_dir, region_code=region_code, invitee=invitee,
                                     meeting_invitees=invited)
            targets = domain.plan(rule, people)
            if not targets:
                log.warning("routing rule found no recipients", template=rule.template)
            # One render per event (and recipient shape) where the template allows, not one per recipient.
            to_render = [t for t in targets if t.problem is None and not rule.digest]
            rendered = dict(zip(map(id, to_render), render_each(self._renderer, rule.template, {
                "event": payload, "region": region_name(region_code), "event_type": ctx.event.type,
                "event_time": ctx.event.time}, [t.recipient for t in to_render]))) if to_render else {}
            for target in targets:
                if rule.digest and target.problem is None:
                    data = payload.model_dump(mode="json") if data is None else data
                    digest.append((ctx.event.id, ctx.event.type, target.recipient.recipient_id, target.channel.value,
                                   day, region_code, data))
                else:
                    intents.append((self._intent(payload, ctx, target, region_code, rendered.get(id(target))),
                                    ctx.event, target))

    async def _write_deliveries(self, outbox: Outbox, conn: Any,
                                intents: list[tuple[Delivery, CloudEvent, Target]]) -> None:
        """The batch's delivery rows in one statement; DeliveryFailed for the failed-at-once ones written now."""
        written = await store.insert_deliveries(conn, [d for d, _, _ in intents])
        failures = []
        for d, event, target in intents:
            # A row not written means this (event, recipient, channel) already had its delivery.
            if d.status != "failed" or d.delivery_id not in written:
                continue
            with message_context(event_id=event.id, event_type=event.type, correlation_id=event.correlation_id):
                log.warning("delivery failed before sending", delivery_id=str(d.delivery_id), reason=d.reason)
            if self._metrics is not None:
                self._metrics.deliveries.labels(target.channel.value, "failed").inc()
            failures.append((DeliveryFailed(
                delivery_id=d.delivery_id, recipient_id=target.recipient.recipient_id, channel=target.channel,
                source_event_id=event.id, source_event_type=event.type, attempts=0,
                at=datetime.now(UTC), reason=d.reason,
            ), {"correlation_id": event.correlation_id, "causation_id": event.id, "traceparent": event.traceparent}))
        await outbox.add_many(conn, failures)

    def _intent(self, payload: EventPayload, ctx: HandlerContext, target: Target, region_code: str | None,
                rendered: Rendered | TemplateFailure | None = None) -> Delivery:
        """The delivery for one target, rendered; failed at once (with the reason) if it cannot be."""
        person, channel = target.recipient, target.channel
        intent = Delivery(
            delivery_id=domain.delivery_id(ctx.event.id, person.recipient_id, channel),
            source_event_id=ctx.event.id, source_event_type=ctx.event.type,
            correlation_id=ctx.event.correlation_id, recipient_id=person.recipient_id,
            recipient_name=person.name, channel=channel, address=person.address(channel) or "",
            template=target.rule.template,
            # The span handling the event (its sends are children of it), else the event's own.
            traceparent=tracecontext.current_traceparent() or ctx.event.traceparent,
        )
        if target.problem is not None:
            return intent.failed(target.problem)
        try:
            if isinstance(rendered, TemplateFailure):
                raise rendered
            if rendered is None:
                rendered = self._renderer.render(target.rule.template, {
                    "event": payload, "recipient": person, "region": region_name(region_code),
                    "event_type": ctx.event.type, "event_time": ctx.event.time,
                })
            ics = None
            if channel is Channel.EMAIL and ctx.event.type in CALENDAR_TYPES and person.invitation_id:
                ics = self._ics(payload, person, ctx.event.type, ctx.event.time)
        except TemplateFailure as exc:
            log.error("template failed; nothing will be sent", delivery_id=str(intent.delivery_id),
                      template=target.rule.template, error=str(exc))
            return intent.failed(f"template error: {exc}")
        return dataclasses.replace(intent, subject=rendered.subject, text_body=rendered.text,
                                   html_body=rendered.html, ics=ics)

    def _ics(self, payload: Any, person: Recipient, event_type: str, stamp: datetime) -> str:
        meeting = payload.meeting
        kind = CALENDAR_TYPES[event_type]
        _, _, organizer_email = self._s.smtp_from.rpartition("<")
        rsvp = getattr(payload, "rsvp_url", None)
        # The producer's calendar identity wins when it sends one (the same UID on every update);
        # otherwise the invitation id is the UID and the event time orders updates.
        uid = getattr(payload, "calendar_uid", None)
        if uid:
            sequence = int(getattr(payload, "calendar_sequence", 0))
        else:
            uid = f"{person.invitation_id}@{self._s.message_id_domain}"
            # Minutes since 2026 grow with every later change: calendars keep the newest version.
            sequence = 0 if kind == "request" else max(1, int((stamp - SEQUENCE_EPOCH).total_seconds() // 60))
        return invitation_ics(
            uid=uid, title=meeting.title,
            description=(meeting.agenda + (f"\n\nKonfirmasi kehadiran: {rsvp}" if rsvp else "")).strip(),
            starts_at=meeting.starts_at, ends_at=meeting.ends_at, location=meeting.venue, url=meeting.online_url,
            organizer_name=meeting.organizer, organizer_email=organizer_email.rstrip(">") or self._s.smtp_from,
            attendee_name=person.name, attendee_email=person.email, stamp=stamp,
            sequence=sequence, cancelled=kind == "cancel",
        )
