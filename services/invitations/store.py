"""SQL for meetings, the invitee directory, invitations and their answers.

`Store(conn)` is bound to the unit of work's connection (the runtime builds one per unit of work);
GET routes read through `Store(pool)`, each query then on a connection of its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from shared.platform import timers

from .domain import Meeting

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
REMINDER = "invitations.reminder"  # the durable timer kind (shared.platform.timers)


class Store:
    __slots__ = ("conn",)

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # ---- meetings ----------------------------------------------------------------------------

    async def insert_meeting(self, meeting: Meeting, *, created_by: str, idempotency_key: str | None) -> bool:
        """False when the idempotency key was already used (nothing written)."""
        status = await self.conn.execute(
            """INSERT INTO meetings (meeting_id, title, agenda, starts_at, ends_at, venue, online_url,
                                     organizer, status, created_by, idempotency_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (idempotency_key) DO NOTHING""",
            meeting.meeting_id, meeting.title, meeting.agenda, meeting.starts_at, meeting.ends_at,
            meeting.venue, meeting.online_url, meeting.organizer, meeting.status, created_by, idempotency_key,
        )
        return status == "INSERT 0 1"

    async def meeting_by_key(self, idempotency_key: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow("SELECT * FROM meetings WHERE idempotency_key = $1", idempotency_key)

    async def get_meeting(self, meeting_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", meeting_id)

    async def lock_meeting(self, meeting_id: uuid.UUID) -> asyncpg.Record | None:
        """Lock the aggregate: its events then enter the outbox in commit order (per-key order)."""
        return await self.conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1 FOR UPDATE", meeting_id)

    async def move_meeting(self, meeting_id: uuid.UUID, starts_at: datetime, ends_at: datetime,
                           rsvp_deadline: datetime) -> asyncpg.Record:
        # The RSVP deadline moves with the meeting: links sent from now on (reminders) carry the new
        # expiry, and the RSVP page judges links already mailed by it.
        await self.conn.execute("UPDATE invitations SET rsvp_expires_at = $2 WHERE meeting_id = $1",
                                meeting_id, rsvp_deadline)
        return await self.conn.fetchrow(
            """UPDATE meetings SET starts_at = $2, ends_at = $3, sequence = sequence + 1
               WHERE meeting_id = $1 RETURNING *""", meeting_id, starts_at, ends_at)

    async def cancel_meeting(self, meeting_id: uuid.UUID, reason: str, now: datetime) -> asyncpg.Record:
        return await self.conn.fetchrow(
            """UPDATE meetings SET status = 'cancelled', cancelled_at = $3, cancel_reason = $2, sequence = sequence + 1
               WHERE meeting_id = $1 RETURNING *""", meeting_id, reason, now)

    async def conclude_meeting(self, meeting_id: uuid.UUID, now: datetime) -> asyncpg.Record:
        return await self.conn.fetchrow(
            "UPDATE meetings SET status = 'concluded', concluded_at = $2 WHERE meeting_id = $1 RETURNING *",
            meeting_id, now)

    # ---- directory ---------------------------------------------------------------------------

    async def put_invitee(self, entry: dict[str, Any], *, updated_by: str, overwrite: bool = True) -> bool:
        """Insert or (when `overwrite`) replace one seat's official. True when a row was written."""
        conflict = ("DO UPDATE SET name = EXCLUDED.name, title = EXCLUDED.title, email = EXCLUDED.email, "
                    "phone = EXCLUDED.phone, webhook_url = EXCLUDED.webhook_url, "
                    "updated_by = EXCLUDED.updated_by, updated_at = now()") if overwrite else "DO NOTHING"
        status = await self.conn.execute(
            f"""INSERT INTO invitees (region_code, role, name, title, email, phone, webhook_url, updated_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (region_code, role) {conflict}""",
            entry["region_code"], entry["role"], entry["name"], entry["title"], entry["email"],
            entry.get("phone"), entry.get("webhook_url"), updated_by,
        )
        return status == "INSERT 0 1"

    async def get_invitee(self, region_code: str, role: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow("SELECT * FROM invitees WHERE region_code = $1 AND role = $2",
                                        region_code, role)

    async def list_invitees(self) -> list[asyncpg.Record]:
        return await self.conn.fetch("SELECT * FROM invitees ORDER BY region_code, role")

    # ---- invitations -------------------------------------------------------------------------

    async def insert_invitation(
        self, *, invitation_id: uuid.UUID, meeting_id: uuid.UUID, region_code: str, role: str,
        person: dict[str, Any], rsvp_expires_at: datetime, now: datetime, delegated_from: uuid.UUID | None = None,
    ) -> asyncpg.Record | None:
        """The new invitation, or None when that seat already has one for this meeting."""
        return await self.conn.fetchrow(
            """INSERT INTO invitations (invitation_id, meeting_id, region_code, role, name, title, email, phone,
                                        webhook_url, delegated_from, rsvp_expires_at, issued_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (meeting_id, region_code, role) WHERE delegated_from IS NULL DO NOTHING
               RETURNING *""",
            invitation_id, meeting_id, region_code, role, person["name"], person.get("title") or "",
            person.get("email"), person.get("phone"), person.get("webhook_url"), delegated_from, rsvp_expires_at,
            now,
        )

    async def delegations_of(self, invitation_id: uuid.UUID) -> tuple[int, datetime | None]:
        """How many delegates an invitation has named (withdrawn ones included), and when it last did."""
        row = await self.conn.fetchrow(
            "SELECT count(*) AS n, max(issued_at) AS last_at FROM invitations WHERE delegated_from = $1",
            invitation_id)
        return row["n"], row["last_at"]

    async def get_invitation(self, invitation_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.conn.fetchrow("SELECT * FROM invitations WHERE invitation_id = $1", invitation_id)

    async def invitations_of(self, meeting_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "SELECT * FROM invitations WHERE meeting_id = $1 ORDER BY region_code, issued_at, role", meeting_id)

    async def record_answer(
        self, invitation_id: uuid.UUID, *, response: str, reason: str, delegate: dict[str, Any] | None,
        delegate_invitation_id: uuid.UUID | None, previous_response: str | None, now: datetime,
    ) -> None:
        await self.conn.execute(
            """UPDATE invitations SET response = $2, reason = $3, delegate_invitation_id = $4, responded_at = $5
               WHERE invitation_id = $1""",
            invitation_id, response, reason, delegate_invitation_id, now)
        await self.conn.execute(
            """INSERT INTO responses (invitation_id, response, reason, delegate, previous_response, responded_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            invitation_id, response, reason, delegate, previous_response, now)

    async def withdraw_invitation(self, invitation_id: uuid.UUID) -> None:
        await self.conn.execute("UPDATE invitations SET status = 'withdrawn' WHERE invitation_id = $1", invitation_id)

    async def mark_attended(self, meeting_id: uuid.UUID, invitation_ids: list[uuid.UUID], attended: bool,
                            now: datetime) -> list[uuid.UUID]:
        """Ids updated; ids of other meetings or withdrawn invitations are left out."""
        rows = await self.conn.fetch(
            """UPDATE invitations SET attended = $3, attended_at = CASE WHEN $3 THEN $4::timestamptz END
               WHERE meeting_id = $1 AND invitation_id = ANY($2::uuid[]) AND status = 'active'
               RETURNING invitation_id""",
            meeting_id, invitation_ids, attended, now)
        return [r["invitation_id"] for r in rows]

    # ---- reminders (durable timers in the same transaction) ----------------------------------

    async def arm_reminder(self, key: str, due_at: datetime, payload: dict[str, Any], *, rearm: bool) -> None:
        await timers.schedule(self.conn, REMINDER, key, due_at, payload, rearm=rearm)

    async def cancel_reminders(self, key_prefix: str) -> None:
        """Pending reminders whose key starts with the prefix: a meeting's (`<meeting>:`) or one invitation's."""
        await timers.cancel(self.conn, REMINDER, key_prefix)
