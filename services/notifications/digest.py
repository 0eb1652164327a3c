"""The daily digest for provincial staff: one message per recipient and day, from a durable timer.

The timer `notifications.digest` with key `daily:<date>` fires once (the wheel's
guarantee); its handler writes one delivery per recipient with source id
`digest:<date>` (unique per recipient and channel), closes the items and arms the next
day's timer, all in the timer's transaction.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg

from shared.contracts.notifications import Channel, DeliveryFailed
from shared.contracts.regions import regions
from shared.platform import timers
from shared.platform.logging import get_logger
from shared.platform.wita import WITA

from . import domain
from .deliveries import Delivery
from .rendering import Renderer, TemplateFailure
from .store import Store

log = get_logger(__name__)
KIND = "notifications.digest"
DIGEST_TYPE = "ntb.notifications.digest.daily"
TEMPLATE = "daily_digest"


async def arm(conn: asyncpg.Connection, due: datetime) -> None:
    day = due.astimezone(WITA).date()
    await timers.schedule(conn, KIND, f"daily:{day.isoformat()}", due, {"day": day.isoformat()})


async def ensure_armed(conn: asyncpg.Connection, now: datetime, at: time) -> None:
    """At start: the next digest moment has a timer (idempotent; an earlier one keeps its place)."""
    await arm(conn, domain.next_digest_at(now, at))


async def build_digest(timer: timers.Timer, ctx: timers.TimerContext, *, renderer: Renderer, at: time) -> None:
    """The handler of the digest timer (`at`: the digests' time of day, WITA), in the timer's unit of work."""
    day = date.fromisoformat(timer.payload["day"])
    store: Store = ctx.store
    items = await store.open_digest_items(day)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for item in items:
        groups[(item["recipient_id"], item["channel"])].append(item)
    people = {p.recipient_id: p for p in await store.directory()}
    names = {code: r.name for code, r in regions().items()}
    digest_id = f"digest:{day.isoformat()}"
    for (recipient_id, channel_name), group in groups.items():
        keys = [(i["source_event_id"], recipient_id, channel_name) for i in group]
        await store.close_digest_items(keys, digest_id)
        person = people.get(recipient_id)
        if person is None:
            log.warning("digest recipient left the directory; items closed unsent", recipient_id=recipient_id)
            continue
        channel = Channel(channel_name)
        summary = domain.summarize([(i["source_event_type"], i["data"]) for i in group], names)
        await _intend(ctx, renderer, digest_id, day, person, channel, summary)
    await arm(ctx.conn, domain.next_digest_at(datetime.combine(day, at, tzinfo=WITA) + timedelta(minutes=1), at))
    log.info("digest built", day=day.isoformat(), recipients=len(groups), items=len(items))


async def _intend(ctx: timers.TimerContext, renderer: Renderer, digest_id: str, day: date,
                  person: domain.Recipient, channel: Channel, summary: domain.DigestSummary) -> None:
    delivery_id = domain.delivery_id(digest_id, person.recipient_id, channel)
    intent = Delivery(
        delivery_id=delivery_id, source_event_id=digest_id, source_event_type=DIGEST_TYPE, correlation_id=None,
        recipient_id=person.recipient_id, recipient_name=person.name, channel=channel,
        address=person.address(channel) or "", template=TEMPLATE,
    )
    reason = domain.address_problem(channel, intent.address)
    if reason is None:
        try:
            rendered = renderer.render(TEMPLATE, {"recipient": person, "day": day, **summary.context()})
            intent = dataclasses.replace(intent, subject=rendered.subject, text_body=rendered.text,
                                         html_body=rendered.html)
        except TemplateFailure as exc:
            reason = f"template error: {exc}"
            log.error("digest template failed; nothing will be sent", error=str(exc))
    if reason is not None:
        intent = intent.failed(reason)
    if await ctx.store.insert_delivery(intent) and reason is not None:
        await ctx.emit(DeliveryFailed(
            delivery_id=delivery_id, recipient_id=person.recipient_id, channel=channel,
            source_event_id=digest_id, source_event_type=DIGEST_TYPE, attempts=0, at=ctx.now, reason=reason,
        ))
