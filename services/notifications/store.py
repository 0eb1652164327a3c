"""SQL for the directory, the deliveries and the digest items (plain SQL, $n parameters)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from shared.contracts.notifications import Channel
from shared.platform import outbox

from .deliveries import COLUMNS, Delivery, delivery_of
from .domain import Recipient

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

RECIPIENT_COLUMNS = "recipient_id, name, title, role, region_code, email, webhook_url, channels, muted, active"


# --- directory ---------------------------------------------------------------------------

def to_recipient(row: Mapping[str, Any]) -> Recipient:
    return Recipient(
        recipient_id=row["recipient_id"], name=row["name"], title=row["title"], role=row["role"],
        region_code=row["region_code"], email=row["email"], webhook_url=row["webhook_url"],
        channels=tuple(Channel(c) for c in row["channels"]), muted=frozenset(row["muted"]),
    )


# --- deliveries --------------------------------------------------------------------------

# Pending rows wake the senders (LISTEN on "<schema>_deliveries") when their transaction
# commits; failed-at-once rows do not need them. All rows and the wake-up in one round trip.
INSERT_DELIVERIES = """
WITH written AS (
    INSERT INTO deliveries (delivery_id, source_event_id, source_event_type, correlation_id, recipient_id,
        recipient_name, channel, address, template, subject, text_body, html_body, ics, status, reason,
        failed_at, next_attempt_at, traceparent)
    SELECT d.delivery_id, d.source_event_id, d.source_event_type, d.correlation_id, d.recipient_id,
           d.recipient_name, d.channel, d.address, d.template, d.subject, d.text_body, d.html_body, d.ics,
           d.status, d.reason, CASE WHEN d.status = 'failed' THEN now() END, now(), d.traceparent
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                $16::text[])
         AS d(delivery_id, source_event_id, source_event_type, correlation_id, recipient_id, recipient_name,
              channel, address, template, subject, text_body, html_body, ics, traceparent, status, reason)
    ON CONFLICT (source_event_id, recipient_id, channel) DO NOTHING
    RETURNING delivery_id, status)
SELECT delivery_id,
       (SELECT count(*) FROM (SELECT pg_notify(current_schema() || '_deliveries', '')
                              FROM written WHERE status = 'pending') AS woken) AS woken
FROM written"""
# What routing writes of a Delivery (the rest is the sender's), in the order of INSERT_DELIVERIES' parameters.
WRITTEN = COLUMNS[:COLUMNS.index("reason") + 1]
# What a claim returns: every column of a Delivery.
CLAIMED = ", ".join(f"d.{name}" for name in COLUMNS)


def wake_channel(schema: str) -> str:
    """The LISTEN channel on which committed pending deliveries announce themselves."""
    return f"{schema}_deliveries"


# Outcomes of finished sends and their DeliverySent/DeliveryFailed outbox rows in ONE statement
# (atomic without BEGIN/COMMIT round trips). A row is marked only while this sender still holds
# its lease (same token, still pending); the events are written for the marked rows only.
MARK = f"""
WITH outcome AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS o(id, token, status, reason, error, next_at)),
marked AS (
    UPDATE deliveries d SET
        status = o.status,
        sent_at = CASE WHEN o.status = 'sent' THEN $7 ELSE d.sent_at END,
        failed_at = CASE WHEN o.status = 'failed' THEN $7 ELSE d.failed_at END,
        reason = COALESCE(o.reason, d.reason),
        last_error = o.error,
        next_attempt_at = COALESCE(o.next_at, d.next_attempt_at),
        lease_until = NULL, lease_token = NULL
    FROM outcome o
    WHERE d.delivery_id = o.id AND d.lease_token = o.token AND d.status = 'pending'
    RETURNING d.delivery_id),
events AS (
    INSERT INTO outbox ({outbox.WRITE_COLUMNS})
    SELECT e.event_id, e.topic, e.key, e.headers::jsonb, e.payload, e.header_pack
    FROM unnest($8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[])
         WITH ORDINALITY AS e(delivery_id, event_id, topic, key, headers, payload, header_pack, n)
    WHERE e.delivery_id IN (SELECT delivery_id FROM marked)
    ORDER BY e.n
    RETURNING 1)
SELECT delivery_id,
       (SELECT count(*) FROM (SELECT {outbox.WAKE_RELAY} FROM events) AS woken) AS woken
FROM marked"""


DELIVERY_VIEW = ("delivery_id, source_event_id, source_event_type, correlation_id, recipient_id, recipient_name, "
                 "channel, address, template, subject, status, attempts, next_attempt_at, last_error, reason, "
                 "created_at, sent_at, failed_at, resends")


# --- resend (operators) -----------------------------------------------------------------

# The deliveries asked for, locked, with the address the directory holds now: an operator
# usually fixes a recipient's address, then resends what failed for it.
RESEND_CANDIDATES = """
SELECT d.delivery_id, d.status, d.attempts, d.reason, d.address, d.channel,
       d.subject IS NOT NULL AND d.text_body IS NOT NULL AS rendered,
       CASE d.channel WHEN 'email' THEN COALESCE(r.email, i.email) ELSE COALESCE(r.webhook_url, i.webhook_url) END
           AS current_address
FROM deliveries d
LEFT JOIN recipients r ON r.recipient_id = d.recipient_id AND r.active
LEFT JOIN invitees i ON d.recipient_id = 'invitee:' || i.invitation_id::text
WHERE ($1::uuid IS NULL OR d.delivery_id = $1) AND ($2::text IS NULL OR d.source_event_id = $2)
ORDER BY d.created_at, d.delivery_id
FOR UPDATE OF d"""

# Back to pending, due now, attempts from zero; the same delivery id, hence the same Message-ID
# and Idempotency-Key. The audit rows and the senders' wake-up in the same statement.
RESEND = """
WITH chosen AS (
    SELECT * FROM unnest($1::uuid[], $2::text[]) AS c(delivery_id, address)),
resent AS (
    UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), reason = NULL,
        failed_at = NULL, lease_until = NULL, lease_token = NULL, address = c.address, resends = d.resends + 1
    FROM chosen c WHERE d.delivery_id = c.delivery_id AND d.status = 'failed'
    RETURNING d.delivery_id),
audited AS (
    INSERT INTO delivery_audit (delivery_id, actor, actor_role, action, from_status, to_status, attempts_before,
                                reason_before, address_before, address_after)
    SELECT a.delivery_id, $3, $4, 'resend', 'failed', 'pending', a.attempts, a.reason, a.address_before, a.address
    FROM unnest($1::uuid[], $2::text[], $5::int[], $6::text[], $7::text[])
         AS a(delivery_id, address, attempts, reason, address_before)
    WHERE a.delivery_id IN (SELECT delivery_id FROM resent)
    RETURNING 1)
SELECT delivery_id, (SELECT count(*) FROM audited) AS audited,
       (SELECT count(*) FROM (SELECT pg_notify(current_schema() || '_deliveries', '')) AS woken) AS woken
FROM resent"""


# --- digest ------------------------------------------------------------------------------

DigestItem = tuple[str, str, str, str, date, str | None, Mapping[str, Any]]


# --- invitees (audience of meeting-wide notices) -----------------------------------------


class Store:
    """This service's SQL, bound to a connection in its transaction (a unit of work's `store`), or to
    the pool for statements atomic on their own (the sender's claim, mark and release; GET reads)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    # directory
    async def seed_recipients(self, people: Iterable[Mapping[str, Any]]) -> int:
        """Insert seed entries whose id is new; entries edited over the API are left alone."""
        added = 0
        for p in people:
            status = await self._conn.execute(
                f"INSERT INTO recipients ({RECIPIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true) "
                "ON CONFLICT (recipient_id) DO NOTHING",
                p["id"], p["name"], p.get("title", ""), p["role"], p.get("region_code"), p.get("email"),
                p.get("webhook_url"), list(p.get("channels") or ["email"]), list(p.get("muted") or []),
            )
            added += status.endswith(" 1")
        return added

    async def directory(self) -> list[Recipient]:
        rows = await self._conn.fetch(f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE active ORDER BY recipient_id")
        return [to_recipient(r) for r in rows]

    async def list_recipients(self, role: str | None, region_code: str | None) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            f"SELECT {RECIPIENT_COLUMNS}, created_at, updated_at FROM recipients "
            "WHERE ($1::text IS NULL OR role = $1) AND ($2::text IS NULL OR region_code = $2) ORDER BY recipient_id",
            role, region_code,
        )

    async def get_recipient(self, recipient_id: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            f"SELECT {RECIPIENT_COLUMNS}, created_at, updated_at FROM recipients WHERE recipient_id = $1", recipient_id
        )

    async def insert_recipient(self, r: Mapping[str, Any]) -> bool:
        status = await self._conn.execute(
            f"INSERT INTO recipients ({RECIPIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (recipient_id) DO NOTHING",
            r["recipient_id"], r["name"], r["title"], r["role"], r["region_code"], r["email"], r["webhook_url"],
            r["channels"], r["muted"], r["active"],
        )
        return status.endswith(" 1")

    async def update_recipient(self, recipient_id: str, r: Mapping[str, Any]) -> bool:
        status = await self._conn.execute(
            "UPDATE recipients SET name = $2, title = $3, role = $4, region_code = $5, email = $6, webhook_url = $7, "
            "channels = $8, muted = $9, active = $10, updated_at = now() WHERE recipient_id = $1",
            recipient_id, r["name"], r["title"], r["role"], r["region_code"], r["email"], r["webhook_url"],
            r["channels"], r["muted"], r["active"],
        )
        return status.endswith(" 1")

    # deliveries
    async def insert_deliveries(self, deliveries: Sequence[Delivery]) -> set[uuid.UUID]:
        """Record the intents; returns the ids written (an (event, recipient, channel) with a row already is not)."""
        if not deliveries:
            return set()
        columns = [[getattr(d, name) for d in deliveries] for name in WRITTEN]
        return {r["delivery_id"] for r in await self._conn.fetch(INSERT_DELIVERIES, *columns)}

    async def insert_delivery(self, d: Delivery) -> bool:
        """Record one intent; False when this (event, recipient, channel) already has a row."""
        return bool(await self.insert_deliveries([d]))

    async def claim_due(self, now: datetime, lease: timedelta, limit: int, *,
                        timeout: float | None = None) -> list[Delivery]:
        """Lease due pending rows to this sender; a lease that runs out makes the row due again.

        One statement, atomic on its own: no BEGIN/COMMIT round trips around it."""
        rows = await self._conn.fetch(
            f"""WITH due AS (
                   SELECT delivery_id FROM deliveries
                   WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
               UPDATE deliveries d SET lease_until = $1 + $2, lease_token = gen_random_uuid(), attempts = attempts + 1
               FROM due WHERE d.delivery_id = due.delivery_id
               RETURNING {CLAIMED}""",
            now, lease, limit, timeout=timeout,
        )
        return [delivery_of(row) for row in rows]

    async def next_due(self, *, timeout: float | None = None) -> datetime | None:
        """When the next pending row can be claimed (its retry time, or when its lease runs out); None if none."""
        return await self._conn.fetchval(
            "SELECT min(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at))) FROM deliveries "
            "WHERE status = 'pending'", timeout=timeout)

    async def release(self, leases: Sequence[tuple[uuid.UUID, uuid.UUID]], *,
                      timeout: float | None = None) -> None:
        """Give back leased rows that were never sent (a graceful stop): due again at once, the attempt uncounted."""
        await self._conn.execute(
            "UPDATE deliveries d SET lease_until = NULL, lease_token = NULL, attempts = d.attempts - 1 "
            "FROM unnest($1::uuid[], $2::uuid[]) AS l(id, token) "
            "WHERE d.delivery_id = l.id AND d.lease_token = l.token AND d.status = 'pending'",
            [lease[0] for lease in leases], [lease[1] for lease in leases], timeout=timeout,
        )

    async def mark(self, now: datetime, outcomes: Sequence[Mapping[str, Any]],
                   events: Sequence[tuple[uuid.UUID, Any, str, str]], *,
                   timeout: float | None = None) -> set[uuid.UUID]:
        """Record outcomes (id, token, status sent|failed|pending, reason, error, next_at) and the events
        (delivery id, CloudEvent, topic, key) of the rows marked; returns the ids marked (lease still ours)."""
        written = [outbox.row(e[1], topic=e[2], key=e[3]) for e in events]  # WRITE_COLUMNS order
        rows = await self._conn.fetch(
            MARK,
            [o["id"] for o in outcomes], [o["token"] for o in outcomes], [o["status"] for o in outcomes],
            [o["reason"] and o["reason"][:2000] for o in outcomes],
            [o["error"] and o["error"][:2000] for o in outcomes],
            [o["next_at"] for o in outcomes], now,
            [e[0] for e in events], [w[0] for w in written], [w[1] for w in written], [w[2] for w in written],
            # JSON text, cast in SQL: a list of pairs in a jsonb[] parameter would be read as a 2-D array.
            [json.dumps(w[3]) for w in written], [w[4] for w in written], [w[5] for w in written],
            timeout=timeout,
        )
        return {r["delivery_id"] for r in rows}

    async def find_deliveries(self, *, event_id: str | None, recipient_id: str | None, status: str | None,
                              limit: int) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            f"SELECT {DELIVERY_VIEW} FROM deliveries WHERE ($1::text IS NULL OR source_event_id = $1) "
            "AND ($2::text IS NULL OR recipient_id = $2) AND ($3::text IS NULL OR status = $3) "
            "ORDER BY created_at DESC, delivery_id LIMIT $4",
            event_id, recipient_id, status, limit,
        )

    async def get_delivery(self, delivery_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._conn.fetchrow(f"SELECT {DELIVERY_VIEW} FROM deliveries WHERE delivery_id = $1", delivery_id)

    # resend (operators)
    async def resend_candidates(self, *, delivery_id: uuid.UUID | None = None,
                                event_id: str | None = None) -> list[asyncpg.Record]:
        return await self._conn.fetch(RESEND_CANDIDATES, delivery_id, event_id)

    async def resend(self, chosen: Sequence[tuple[Mapping[str, Any], str]], *, actor: str,
                     role: str) -> set[uuid.UUID]:
        """Put failed deliveries (candidate row, address to use) back to pending, audited; returns the ids resent."""
        if not chosen:
            return set()
        rows = await self._conn.fetch(
            RESEND, [c["delivery_id"] for c, _ in chosen], [address for _, address in chosen], actor, role,
            [c["attempts"] for c, _ in chosen], [c["reason"] for c, _ in chosen], [c["address"] for c, _ in chosen],
        )
        return {r["delivery_id"] for r in rows}

    async def delivery_audit(self, delivery_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            "SELECT at, actor, actor_role, action, from_status, to_status, attempts_before, reason_before "
            "FROM delivery_audit WHERE delivery_id = $1 ORDER BY at, id", delivery_id)

    # digest
    async def add_digest_items(self, items: Sequence[DigestItem]) -> None:
        """(event id, event type, recipient id, channel, day, region code, data) rows for the digests
        (one round trip)."""
        await self._conn.executemany(
            "INSERT INTO digest_items (source_event_id, source_event_type, recipient_id, channel, day, region_code, "
            "data) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            items,
        )

    async def open_digest_items(self, until: date) -> list[asyncpg.Record]:
        """Items not yet in a digest, up to and including `until`, locked for this digest run."""
        return await self._conn.fetch(
            "SELECT * FROM digest_items WHERE digest_id IS NULL AND day <= $1 "
            "ORDER BY recipient_id, channel, created_at FOR UPDATE",
            until,
        )

    async def close_digest_items(self, keys: Sequence[tuple[str, str, str]], digest_id: str) -> None:
        await self._conn.executemany(
            "UPDATE digest_items SET digest_id = $4 WHERE source_event_id = $1 AND recipient_id = $2 AND channel = $3",
            [(*k, digest_id) for k in keys],
        )

    # invitees (audience of meeting-wide notices)
    async def remember_invitee(self, *, invitation_id: Any, meeting_id: Any, region_code: str | None,
                               contact: Any, supersedes: Any | None) -> None:
        """Record an invitee; a delegation replaces the delegating invitation in the audience."""
        await self._conn.execute(
            """INSERT INTO invitees (invitation_id, meeting_id, region_code, name, title, email, webhook_url)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (invitation_id) DO UPDATE SET name = EXCLUDED.name, title = EXCLUDED.title,
                   email = EXCLUDED.email, webhook_url = EXCLUDED.webhook_url, updated_at = now()""",
            invitation_id, meeting_id, region_code, contact.name, contact.title, contact.email, contact.webhook_url,
        )
        if supersedes is not None:
            await self._conn.execute("UPDATE invitees SET active = false, updated_at = now() WHERE invitation_id = $1",
                               supersedes)

    async def meeting_invitees(self, meeting_id: Any) -> list[Recipient]:
        rows = await self._conn.fetch(
            "SELECT * FROM invitees WHERE meeting_id = $1 AND active ORDER BY invitation_id", meeting_id
        )
        return [
            Recipient(recipient_id=f"invitee:{r['invitation_id']}", name=r["name"], title=r["title"], role="invitee",
                      region_code=r["region_code"], email=r["email"], webhook_url=r["webhook_url"],
                      channels=(Channel.EMAIL, Channel.WEBHOOK), invitation_id=str(r["invitation_id"]))
            for r in rows
        ]
