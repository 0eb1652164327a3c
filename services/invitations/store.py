"""SQL for meetings."""

from __future__ import annotations

import uuid

import asyncpg

from .domain import Meeting


async def insert_meeting(
    conn: asyncpg.Connection, meeting: Meeting, *, created_by: str, idempotency_key: str | None
) -> bool:
    """False when the idempotency key was already used (nothing written)."""
    status = await conn.execute(
        """INSERT INTO meetings (meeting_id, title, agenda, starts_at, ends_at, venue, online_url,
                                 organizer, status, created_by, idempotency_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (idempotency_key) DO NOTHING""",
        meeting.meeting_id, meeting.title, meeting.agenda, meeting.starts_at, meeting.ends_at,
        meeting.venue, meeting.online_url, meeting.organizer, meeting.status, created_by, idempotency_key,
    )
    return status == "INSERT 0 1"


async def meeting_by_key(conn: asyncpg.Connection, idempotency_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM meetings WHERE idempotency_key = $1", idempotency_key)


async def get_meeting(conn: asyncpg.Connection | asyncpg.Pool, meeting_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", meeting_id)
