"""Consumers: every handled event is journaled, routed, and turned into delivery intents.

Nothing is sent here. In the consuming transaction each (event, recipient, channel) gets
one `deliveries` row, already rendered: pending for the sender, or failed at once with
the reason (invalid address, template error) and a DeliveryFailed event. Rules marked
`digest` add digest items instead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.contracts.invitations import InvitationIssued
from shared.contracts.notifications import Channel, DeliveryFailed
from shared.contracts.regions import regions
from shared.contracts.registry import EventPayload
from shared.platform import tracecontext
from shared.platform.consumer import HandlerContext
from shared.platform.envelope import CloudEvent
from shared.platform.logging import get_logger, message_context
from shared.platform.outbox import Outbox
from shared.platform.wita import as_wita

from . import domain, journal
from .deliveries import Delivery
from .domain import Recipient, Rule, Target
from .ics import invitation_ics
from .rendering import Rendered, Renderer, TemplateFailure, render_each
from .settings import NotificationsSettings
from .store import DigestItem, Store

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


@dataclass(frozen=True, slots=True)
class Routing:
    """What routing needs from the composition: the rules, the templates and the calendar's sender."""

    rules: Sequence[Rule]
    renderer: Renderer
    organizer: str  # the From header ("Name <address>"): the calendar entries' organizer
    message_id_domain: str  # the calendar UID's domain when the event carries none
    metrics: Any = None

    @classmethod
    def of(cls, rules: Sequence[Rule], renderer: Renderer, settings: NotificationsSettings,
           metrics: Any = None) -> Routing:
        return cls(tuple(rules), renderer, settings.smtp_from, settings.message_id_domain, metrics)


async def handle(payload: EventPayload, ctx: HandlerContext, *, routing: Routing) -> None:
    """The consumer handler for every routed type (and the journal for every handled one)."""
    # Rows are deferred to the end of the consumed batch (ctx.deferred): one statement
    # per table per batch instead of per event (docs/performance.md, B4).
    ctx.deferred("notifications.journal", journal.write).append(journal.entry(payload, ctx.event))
    store: Store = ctx.store
    region_code = getattr(payload, "region_code", None)
    invitee = invitee_of(payload)
    if isinstance(payload, InvitationIssued):
        # Written at once: a later event of the same batch may address the meeting's invitees.
        await store.remember_invitee(invitation_id=payload.invitation_id, meeting_id=payload.meeting_id,
                                     region_code=region_code, contact=payload.invitee,
                                     supersedes=payload.delegated_from)
    rules = domain.rules_for(routing.rules, ctx.event.type)
    if not rules:
        return
    if "notifications.directory" not in ctx.cache:  # read once per consumed batch, not per event
        ctx.cache["notifications.directory"] = await store.directory()
    people_dir: list[Recipient] = ctx.cache["notifications.directory"]
    invited: list[Recipient] = []
    if any(r.meeting_invitees for r in rules) and hasattr(payload, "meeting_id"):
        invited = await store.meeting_invitees(payload.meeting_id)
    outbox = ctx.outbox
    if not isinstance(outbox, Outbox):  # the batch's failures go out in one round trip (Outbox.add_many)
        raise TypeError(f"notifications needs the service's Outbox, not {type(outbox).__name__}")
    intents = ctx.deferred("notifications.deliveries",
                           functools.partial(write_deliveries, outbox=outbox, metrics=routing.metrics))
    digest = ctx.deferred("notifications.digest", write_digest_items)
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
        rendered = dict(zip(map(id, to_render), render_each(routing.renderer, rule.template, {
            "event": payload, "region": region_name(region_code), "event_type": ctx.event.type,
            "event_time": ctx.event.time}, [t.recipient for t in to_render]), strict=True)) if to_render else {}
        for target in targets:
            if rule.digest and target.problem is None:
                data = payload.model_dump(mode="json") if data is None else data
                digest.append((ctx.event.id, ctx.event.type, target.recipient.recipient_id, target.channel.value,
                               day, region_code, data))
            else:
                intents.append((intent(payload, ctx.event, target, region_code, routing, rendered.get(id(target))),
                                ctx.event, target))


async def write_deliveries(conn: asyncpg.Connection, intents: list[tuple[Delivery, CloudEvent, Target]], *,
                           outbox: Outbox, metrics: Any = None) -> None:
    """The batch's delivery rows in one statement; DeliveryFailed for the failed-at-once ones written now."""
    written = await Store(conn).insert_deliveries([d for d, _, _ in intents])
    failures: list[tuple[EventPayload, dict[str, str | None]]] = []
    for d, event, target in intents:
        # A row not written means this (event, recipient, channel) already had its delivery.
        if d.status != "failed" or d.delivery_id not in written:
            continue
        with message_context(event_id=event.id, event_type=event.type, correlation_id=event.correlation_id):
            log.warning("delivery failed before sending", delivery_id=str(d.delivery_id), reason=d.reason)
        if metrics is not None:
            metrics.deliveries.labels(target.channel.value, "failed").inc()
        failures.append((DeliveryFailed(
            delivery_id=d.delivery_id, recipient_id=target.recipient.recipient_id, channel=target.channel,
            source_event_id=event.id, source_event_type=event.type, attempts=0,
            at=datetime.now(UTC), reason=d.reason or "",
        ), {"correlation_id": event.correlation_id, "causation_id": event.id, "traceparent": event.traceparent}))
    await outbox.add_many(conn, failures)


async def write_digest_items(conn: asyncpg.Connection, items: list[DigestItem]) -> None:
    await Store(conn).add_digest_items(items)


def intent(payload: EventPayload, event: CloudEvent, target: Target, region_code: str | None, routing: Routing,
           rendered: Rendered | TemplateFailure | None = None) -> Delivery:
    """The delivery for one target, rendered; failed at once (with the reason) if it cannot be."""
    person, channel = target.recipient, target.channel
    planned = Delivery(
        delivery_id=domain.delivery_id(event.id, person.recipient_id, channel),
        source_event_id=event.id, source_event_type=event.type,
        correlation_id=event.correlation_id, recipient_id=person.recipient_id,
        recipient_name=person.name, channel=channel, address=person.address(channel) or "",
        template=target.rule.template,
        # The span handling the event (its sends are children of it), else the event's own.
        traceparent=tracecontext.current_traceparent() or event.traceparent,
    )
    if target.problem is not None:
        return planned.failed(target.problem)
    try:
        if isinstance(rendered, TemplateFailure):
            raise rendered
        if rendered is None:
            rendered = routing.renderer.render(target.rule.template, {
                "event": payload, "recipient": person, "region": region_name(region_code),
                "event_type": event.type, "event_time": event.time,
            })
        ics = None
        if channel is Channel.EMAIL and event.type in CALENDAR_TYPES and person.invitation_id:
            ics = calendar_entry(payload, person, event.type, event.time, routing)
    except TemplateFailure as exc:
        log.error("template failed; nothing will be sent", delivery_id=str(planned.delivery_id),
                  template=target.rule.template, error=str(exc))
        return planned.failed(f"template error: {exc}")
    return dataclasses.replace(planned, subject=rendered.subject, text_body=rendered.text,
                               html_body=rendered.html, ics=ics)


def calendar_entry(payload: Any, person: Recipient, event_type: str, stamp: datetime, routing: Routing) -> str:
    meeting = payload.meeting
    kind = CALENDAR_TYPES[event_type]
    _, _, organizer_email = routing.organizer.rpartition("<")
    rsvp = getattr(payload, "rsvp_url", None)
    # The producer's calendar identity wins when it sends one (the same UID on every update);
    # otherwise the invitation id is the UID and the event time orders updates.
    uid = getattr(payload, "calendar_uid", None)
    if uid:
        sequence = int(getattr(payload, "calendar_sequence", 0))
    else:
        uid = f"{person.invitation_id}@{routing.message_id_domain}"
        # Minutes since 2026 grow with every later change: calendars keep the newest version.
        sequence = 0 if kind == "request" else max(1, int((stamp - SEQUENCE_EPOCH).total_seconds() // 60))
    return invitation_ics(
        uid=uid, title=meeting.title,
        description=(meeting.agenda + (f"\n\nKonfirmasi kehadiran: {rsvp}" if rsvp else "")).strip(),
        starts_at=meeting.starts_at, ends_at=meeting.ends_at, location=meeting.venue, url=meeting.online_url,
        organizer_name=meeting.organizer, organizer_email=organizer_email.rstrip(">") or routing.organizer,
        attendee_name=person.name, attendee_email=person.email, stamp=stamp,
        sequence=sequence, cancelled=kind == "cancel",
    )
