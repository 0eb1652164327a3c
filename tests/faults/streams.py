"""The traffic the fault tests drive, as the real outside actors send it, and how effects are counted.

- commitments: BPJS realization reports on `ntb.bpjs.realization`; one report = one row in
  `realization` (distinct region/segment/month) and one `realization.recorded` event.
- notifications: invitation events, each naming one invitee with a unique address; one event =
  one email, whose Message-ID is derived from (event, recipient, channel).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date
from typing import Any

import asyncpg

from shared.contracts import registry
from shared.contracts.commitments import RealizationReported, Segment
from shared.contracts.regions import regions
from shared.contracts.registry import EventPayload
from shared.platform.envelope import CloudEvent
from tests.integration.notifications.factories import invitation

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def record_of(payload: EventPayload, *, source: str = "/bpjs/test") -> tuple[CloudEvent, Record]:
    spec = registry.spec_for(payload)
    event = CloudEvent.new(source=source, type=spec.type, data=payload.model_dump_json().encode())
    return event, (spec.key_of(payload).encode(), event.data, event.to_headers())


def realization_reports(n: int, tag: str) -> list[Record]:
    """n valid reports, each for a different (region, segment, month): each is one business effect."""
    cells = itertools.product(sorted(regions()), list(Segment), range(1, 13))
    out = []
    for i, (region, segment, month) in zip(range(n), cells, strict=False):
        report = RealizationReported(report_id=f"{tag}-{i}", region_code=region, fiscal_year=2026, segment=segment,
                                     period=date(2026, month, 1), workers_enrolled=100 + i,
                                     contributions_paid_rp=16_800 * (100 + i))
        out.append(record_of(report)[1])
    assert len(out) == n, "at most 840 distinct report cells"
    return out


async def realization_applied(db: asyncpg.Connection, schema: str, tag: str) -> int:
    """Reports whose effect is in the database (the row carries the report id)."""
    return await db.fetchval(f'SELECT count(*) FROM "{schema}".realization WHERE report_id LIKE $1', f"{tag}-%")


async def inbox_count(db: asyncpg.Connection, schema: str) -> int:
    return await db.fetchval(f'SELECT count(*) FROM "{schema}".inbox')


def invitation_events(n: int, tag: str) -> tuple[list[Record], list[str]]:
    """n invitation.issued events, invitee i at a unique address; returns the records and the addresses."""
    records, addresses = [], []
    for i in range(n):
        address = f"undangan-{tag}-{i}@lombokbaratkab.go.id"
        payload = invitation(email=address)
        records.append(record_of(payload, source="/ntb/rakor/invitations")[1])
        addresses.append(address)
    return records, addresses


def mail_figures(messages: list[Any], addresses: list[str]) -> dict[str, int]:
    """Per expected address: delivered at all, distinct Message-IDs, raw copies received."""
    by_address: dict[str, list[str]] = {a: [] for a in addresses}
    for msg in messages:
        for rcpt in msg["X-Envelope-To"].split(","):
            if rcpt in by_address:
                by_address[rcpt].append(str(msg["Message-ID"]))
    delivered = sum(1 for ids in by_address.values() if ids)
    duplicates = sum(len(set(ids)) - 1 for ids in by_address.values() if ids)  # a 2nd distinct email
    resends = sum(len(ids) - len(set(ids)) for ids in by_address.values())  # same Message-ID again
    return {"delivered": delivered, "lost": len(addresses) - delivered, "duplicates": duplicates,
            "resends": resends, "received": len(messages)}


def unique_tag() -> str:
    return uuid.uuid4().hex[:8]
