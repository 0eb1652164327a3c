"""SQL for commitments, submissions, the audit log and realization."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def insert_commitment(conn: Conn, *, commitment_id: uuid.UUID, region_code: str, fiscal_year: int,
                            deadline: datetime, meeting_id: uuid.UUID | None, status: str) -> bool:
    """False when the region already has a commitment for the year (nothing written)."""
    result = await conn.execute(
        """INSERT INTO commitments (commitment_id, region_code, fiscal_year, status, deadline, meeting_id)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (region_code, fiscal_year) DO NOTHING""",
        commitment_id, region_code, fiscal_year, status, deadline, meeting_id,
    )
    return result == "INSERT 0 1"


async def lock(conn: asyncpg.Connection, commitment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM commitments WHERE commitment_id = $1 FOR UPDATE", commitment_id)


async def lock_by_region(conn: asyncpg.Connection, region_code: str, fiscal_year: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM commitments WHERE region_code = $1 AND fiscal_year = $2 FOR UPDATE", region_code, fiscal_year)


async def get(conn: Conn, commitment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM commitments WHERE commitment_id = $1", commitment_id)


async def get_by_region(conn: Conn, region_code: str, fiscal_year: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM commitments WHERE region_code = $1 AND fiscal_year = $2", region_code, fiscal_year)


async def list_all(conn: Conn, fiscal_year: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM commitments WHERE fiscal_year = $1 ORDER BY region_code", fiscal_year)


async def set_status(conn: asyncpg.Connection, commitment_id: uuid.UUID, status: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE commitments SET status = $2, version = version + 1, updated_at = $3 WHERE commitment_id = $1",
        commitment_id, status, at)


async def save_body(conn: asyncpg.Connection, commitment_id: uuid.UUID, *, status: str, body: dict[str, Any],
                    total_workers: int, total_rp: int, max_months: int, worker_months: int,
                    rates_version: str, revision: int, at: datetime) -> None:
    await conn.execute(
        """UPDATE commitments SET status = $2, body = $3, total_workers = $4, total_rp = $5, max_months = $6,
                  worker_months = $7, rates_version = $8, revision = $9, version = version + 1, updated_at = $10
           WHERE commitment_id = $1""",
        commitment_id, status, body, total_workers, total_rp, max_months, worker_months, rates_version,
        revision, at)


async def set_deadline(conn: asyncpg.Connection, commitment_id: uuid.UUID, deadline: datetime, at: datetime) -> None:
    await conn.execute(
        """UPDATE commitments SET deadline = $2, overdue_at = NULL, version = version + 1, updated_at = $3
           WHERE commitment_id = $1""", commitment_id, deadline, at)


async def mark_overdue(conn: asyncpg.Connection, commitment_id: uuid.UUID, at: datetime) -> None:
    await conn.execute("UPDATE commitments SET overdue_at = $2 WHERE commitment_id = $1", commitment_id, at)


async def submission_exists(conn: Conn, submission_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM submissions WHERE submission_id = $1", submission_id))


async def insert_submission(conn: asyncpg.Connection, *, submission_id: str, commitment_id: uuid.UUID,
                            revision: int, channel: str, submitted_by: str, body: dict[str, Any],
                            at: datetime) -> bool:
    result = await conn.execute(
        """INSERT INTO submissions (submission_id, commitment_id, revision, channel, submitted_by, body, submitted_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (submission_id) DO NOTHING""",
        submission_id, commitment_id, revision, channel, submitted_by, body, at)
    return result == "INSERT 0 1"


async def audit(conn: asyncpg.Connection, *, commitment_id: uuid.UUID, at: datetime, actor: str, role: str,
                action: str, from_status: str | None, to_status: str, reason: str = "",
                event_id: str | None = None) -> None:
    await conn.execute(
        """INSERT INTO audit_log (commitment_id, at, actor, role, action, from_status, to_status, reason, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        commitment_id, at, actor, role, action, from_status, to_status, reason, event_id)


async def audit_trail(conn: Conn, commitment_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM audit_log WHERE commitment_id = $1 ORDER BY id", commitment_id)


async def claim_realization_report(conn: asyncpg.Connection, *, report_id: str, region_code: str,
                                   fiscal_year: int, segment: str, period: date, reported_at: datetime) -> bool:
    """False when this report_id was seen before (whatever became of it): a report applies once."""
    result = await conn.execute(
        """INSERT INTO realization_reports (report_id, region_code, fiscal_year, segment, period, reported_at,
                                            applied)
           VALUES ($1, $2, $3, $4, $5, $6, false) ON CONFLICT (report_id) DO NOTHING""",
        report_id, region_code, fiscal_year, segment, period, reported_at)
    return result == "INSERT 0 1"


async def upsert_realization(conn: asyncpg.Connection, *, region_code: str, fiscal_year: int, segment: str,
                             period: date, report_id: str, reported_at: datetime, workers_enrolled: int,
                             contributions_paid_rp: int) -> bool:
    """Put the figure in place unless a newer report (reported_at, then report_id) already is; True if it was."""
    applied = await conn.fetchval(
        """INSERT INTO realization AS r (region_code, fiscal_year, segment, period, report_id, reported_at,
                                         workers_enrolled, contributions_paid_rp)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (region_code, fiscal_year, segment, period) DO UPDATE
              SET report_id = EXCLUDED.report_id, reported_at = EXCLUDED.reported_at,
                  workers_enrolled = EXCLUDED.workers_enrolled,
                  contributions_paid_rp = EXCLUDED.contributions_paid_rp, recorded_at = now()
              WHERE (r.reported_at, r.report_id) < (EXCLUDED.reported_at, EXCLUDED.report_id)
           RETURNING true""",
        region_code, fiscal_year, segment, period, report_id, reported_at, workers_enrolled, contributions_paid_rp)
    if applied:
        await conn.execute("UPDATE realization_reports SET applied = true WHERE report_id = $1", report_id)
    return bool(applied)


async def realization_totals(conn: Conn, fiscal_year: int,
                             region_code: str | None = None) -> dict[str, tuple[int, int]]:
    """Per region: (workers enrolled at each segment's latest period, summed; contributions paid to date)."""
    rows = await conn.fetch(
        """SELECT region_code,
                  sum(workers_enrolled) FILTER (WHERE latest) AS workers,
                  sum(contributions_paid_rp) AS paid
           FROM (SELECT *, period = max(period) OVER (PARTITION BY region_code, segment) AS latest
                 FROM realization WHERE fiscal_year = $1 AND ($2::text IS NULL OR region_code = $2)) r
           GROUP BY region_code""", fiscal_year, region_code)
    return {r["region_code"]: (int(r["workers"] or 0), int(r["paid"] or 0)) for r in rows}
