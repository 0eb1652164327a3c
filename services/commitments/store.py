"""SQL for commitments, submissions, the audit log, realization, deadline timers and sign-in links."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, TypeAlias

import asyncpg

from shared.platform import timers

# A unit of work's connection, or the pool for GET routes' reads (each query then on a connection of its own).
Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


class Store:
    """The commitments' tables behind one connection (a unit of work's) or, for GET routes' reads, the pool."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def insert_commitment(self, *, commitment_id: uuid.UUID, region_code: str, fiscal_year: int,
                                deadline: datetime, meeting_id: uuid.UUID | None, status: str) -> bool:
        """False when the region already has a commitment for the year (nothing written)."""
        result = await self._conn.execute(
            """INSERT INTO commitments (commitment_id, region_code, fiscal_year, status, deadline, meeting_id)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (region_code, fiscal_year) DO NOTHING""",
            commitment_id, region_code, fiscal_year, status, deadline, meeting_id,
        )
        return result == "INSERT 0 1"


    async def lock(self, commitment_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._conn.fetchrow("SELECT * FROM commitments WHERE commitment_id = $1 FOR UPDATE", commitment_id)


    async def lock_by_region(self, region_code: str, fiscal_year: int) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT * FROM commitments WHERE region_code = $1 AND fiscal_year = $2 FOR UPDATE",
            region_code, fiscal_year)


    async def get(self, commitment_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._conn.fetchrow("SELECT * FROM commitments WHERE commitment_id = $1", commitment_id)


    async def get_by_region(self, region_code: str, fiscal_year: int) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT * FROM commitments WHERE region_code = $1 AND fiscal_year = $2", region_code, fiscal_year)


    async def list_all(self, fiscal_year: int) -> list[asyncpg.Record]:
        return await self._conn.fetch("SELECT * FROM commitments WHERE fiscal_year = $1 ORDER BY region_code",
                                      fiscal_year)


    async def set_status(self, commitment_id: uuid.UUID, status: str, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE commitments SET status = $2, version = version + 1, updated_at = $3 WHERE commitment_id = $1",
            commitment_id, status, at)


    async def save_body(self, commitment_id: uuid.UUID, *, status: str, body: dict[str, Any],
                        total_workers: int, total_rp: int, max_months: int, worker_months: int,
                        rates_version: str, revision: int, at: datetime) -> None:
        await self._conn.execute(
            """UPDATE commitments SET status = $2, body = $3, total_workers = $4, total_rp = $5, max_months = $6,
                      worker_months = $7, rates_version = $8, revision = $9, version = version + 1, updated_at = $10
               WHERE commitment_id = $1""",
            commitment_id, status, body, total_workers, total_rp, max_months, worker_months, rates_version,
            revision, at)


    async def set_deadline(self, commitment_id: uuid.UUID, deadline: datetime, at: datetime) -> None:
        await self._conn.execute(
            """UPDATE commitments SET deadline = $2, overdue_at = NULL, version = version + 1, updated_at = $3
               WHERE commitment_id = $1""", commitment_id, deadline, at)


    async def mark_overdue(self, commitment_id: uuid.UUID, at: datetime) -> None:
        await self._conn.execute("UPDATE commitments SET overdue_at = $2 WHERE commitment_id = $1", commitment_id, at)


    async def submission_exists(self, submission_id: str) -> bool:
        return bool(await self._conn.fetchval("SELECT 1 FROM submissions WHERE submission_id = $1", submission_id))


    async def insert_submission(self, *, submission_id: str, commitment_id: uuid.UUID,
                                revision: int, channel: str, submitted_by: str, body: dict[str, Any],
                                at: datetime) -> bool:
        result = await self._conn.execute(
            """INSERT INTO submissions (submission_id, commitment_id, revision, channel, submitted_by, body,
                                        submitted_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (submission_id) DO NOTHING""",
            submission_id, commitment_id, revision, channel, submitted_by, body, at)
        return result == "INSERT 0 1"


    async def audit(self, *, commitment_id: uuid.UUID, at: datetime, actor: str, role: str,
                    action: str, from_status: str | None, to_status: str, reason: str = "",
                    event_id: str | None = None) -> None:
        await self._conn.execute(
            """INSERT INTO audit_log (commitment_id, at, actor, role, action, from_status, to_status, reason, event_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            commitment_id, at, actor, role, action, from_status, to_status, reason, event_id)


    async def audit_trail(self, commitment_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self._conn.fetch("SELECT * FROM audit_log WHERE commitment_id = $1 ORDER BY id", commitment_id)


    async def claim_realization_report(self, *, report_id: str, region_code: str,
                                       fiscal_year: int, segment: str, period: date, reported_at: datetime) -> bool:
        """False when this report_id was seen before (whatever became of it): a report applies once."""
        result = await self._conn.execute(
            """INSERT INTO realization_reports (report_id, region_code, fiscal_year, segment, period, reported_at,
                                                applied)
               VALUES ($1, $2, $3, $4, $5, $6, false) ON CONFLICT (report_id) DO NOTHING""",
            report_id, region_code, fiscal_year, segment, period, reported_at)
        return result == "INSERT 0 1"


    async def upsert_realization(self, *, region_code: str, fiscal_year: int, segment: str,
                                 period: date, report_id: str, reported_at: datetime, workers_enrolled: int,
                                 contributions_paid_rp: int) -> bool:
        """Put the figure in place unless a newer report (reported_at, then report_id) already is; True if it was."""
        applied = await self._conn.fetchval(
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
            await self._conn.execute("UPDATE realization_reports SET applied = true WHERE report_id = $1", report_id)
        return bool(applied)


    async def realization_totals(self, fiscal_year: int,
                                 region_code: str | None = None) -> dict[str, tuple[int, int]]:
        """Per region: (workers enrolled at each segment's latest period, summed; contributions paid to date)."""
        rows = await self._conn.fetch(
            """SELECT region_code,
                      sum(workers_enrolled) FILTER (WHERE latest) AS workers,
                      sum(contributions_paid_rp) AS paid
               FROM (SELECT *, period = max(period) OVER (PARTITION BY region_code, segment) AS latest
                     FROM realization WHERE fiscal_year = $1 AND ($2::text IS NULL OR region_code = $2)) r
               GROUP BY region_code""", fiscal_year, region_code)
        return {r["region_code"]: (int(r["workers"] or 0), int(r["paid"] or 0)) for r in rows}

    async def submission_times(self, fiscal_year: int) -> list[asyncpg.Record]:
        """(submitted_at, region_code) of every submission of the year, oldest first (the dashboard's timeline)."""
        return await self._conn.fetch(
            "SELECT s.submitted_at, c.region_code FROM submissions s JOIN commitments c USING (commitment_id) "
            "WHERE c.fiscal_year = $1 ORDER BY s.submitted_at", fiscal_year)

    # --- deadline timers (shared.platform.timers, in the same transaction) ---------------------

    async def schedule_timer(self, kind: str, key: str, due_at: datetime, payload: dict[str, Any]) -> None:
        await timers.schedule(self._conn, kind, key, due_at, payload, rearm=True)

    async def cancel_timers(self, kind: str, key_prefix: str) -> None:
        await timers.cancel(self._conn, kind, key_prefix)

    # --- sign-in links (queued and mailed by sign_in_mail) --------------------------------------

    async def sign_in_link(self, token_hash: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow("SELECT * FROM sign_in_links WHERE token_hash = $1", token_hash)

    async def use_sign_in_link(self, token_hash: str, now: datetime) -> asyncpg.Record | None:
        """(email, next_path) of a live link, now used up; None if it was used, expired or unknown."""
        return await self._conn.fetchrow(
            "UPDATE sign_in_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 "
            "RETURNING email, next_path", token_hash, now)
