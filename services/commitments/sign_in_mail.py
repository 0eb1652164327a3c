"""Sign-in links, mailed with durable retry.

Asking for a link writes one `sign_in_links` row, mail pending, in the same statement that makes
the link valid; a worker in this service mails it and retries transient SMTP failures with
backoff (jittered, capped) for as long as the link lasts. A restart loses nothing: the row is the
queue. A mail claimed by a worker that dies is claimed again once its lease runs out (it may then
arrive twice, with the same Message-ID and the same link).

The token itself is stored nowhere. It is an HMAC of the row's random `link_id` under the session
secret, so a worker can rebuild it to mail it, while the table (and a backup of it) holds only
the id and the token's SHA-256, which cannot be turned into a usable link without the secret.
Logs name the person by `web_session.subject_of` and the failure by its SMTP code only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.platform import smtp, web, web_session
from shared.platform.logging import get_logger
from shared.platform.retry import backoff_delays

log = get_logger(__name__)

SUBJECT = "Tautan masuk Sistem Rakor NTB"
MESSAGE_ID_DOMAIN = "rakor.ntbprov.go.id"
BATCH = 10


def token_for(secret: bytes, link_id: uuid.UUID) -> str:
    mac = hmac.new(secret, b"sign-in-link\x00" + link_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def request_link(conn: asyncpg.Connection | asyncpg.Pool, secret: bytes, email: str, now: datetime,
                       lifetime: timedelta, next_path: str | None = None) -> str:
    """A new single-use link for `email`, valid for `lifetime`, queued to be mailed; its token."""
    link_id = uuid.uuid4()
    token = token_for(secret, link_id)
    await conn.execute(
        "INSERT INTO sign_in_links (token_hash, email, created_at, expires_at, link_id, mail_state, mail_next_at, "
        "next_path) VALUES ($1, $2, $3, $4, $5, 'pending', $3, $6)",
        token_hash(token), email, now, now + lifetime, link_id, next_path)
    return token


def letter(name: str, link: str, expires_at: datetime) -> str:
    return (f"PEMERINTAH PROVINSI NUSA TENGGARA BARAT\n\nYth. {name}\n\nDengan hormat,\n\n"
            f"Untuk masuk ke Sistem Rakor Perluasan Kepesertaan BPJS Ketenagakerjaan, buka tautan berikut:\n{link}\n\n"
            f"Tautan ini hanya dapat dipakai satu kali dan berlaku sampai {web.format_wita(expires_at)}. "
            "Bila Bapak/Ibu tidak meminta tautan ini, abaikan surel ini.\n\n"
            "Narahubung: Sekretariat Rakor, Biro Pemerintahan Setda Provinsi NTB, telepon (0370) 625 270\n"
            "Surel ini dikirim otomatis; mohon tidak membalas surel ini.\n")


Send = Callable[[smtp.SmtpConfig, Any, str], Awaitable[smtp.SendResult]]


class SignInMailer:
    """Claims pending sign-in mails (FOR UPDATE SKIP LOCKED: replicas share the work), sends, marks."""

    def __init__(self, pool: asyncpg.Pool, settings: Any, staff: Mapping[str, Mapping[str, Any]],
                 clock: Callable[[], datetime], send: Send = smtp.send) -> None:
        self._pool, self._s, self._staff, self._clock, self._send = pool, settings, staff, clock, send
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A link was just requested: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                worked = await self.work_once()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("sign-in mail queue unavailable; retrying", error=type(exc).__name__)
                worked = 0
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=await self._idle_wait())

    async def _idle_wait(self) -> float:
        """Sleep until the next pending mail is due (a retry's backoff, a lease left by a crashed
        replica), at most `sign_in_mail_poll_seconds`; a request in this process wakes it at once.
        An idle service then asks PostgreSQL twice per poll period, not once every 2 s."""
        cap = self._s.sign_in_mail_poll_seconds
        try:
            due = await self._pool.fetchval(
                "SELECT min(mail_next_at) FROM sign_in_links WHERE mail_state = 'pending'")
        except (asyncpg.PostgresError, OSError):
            return cap
        if due is None:
            return cap
        return min(cap, max(0.05, (due - self._clock()).total_seconds()))

    async def _claim(self, now: datetime) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """UPDATE sign_in_links SET mail_next_at = $2 WHERE token_hash IN (
                   SELECT token_hash FROM sign_in_links WHERE mail_state = 'pending' AND mail_next_at <= $1
                   ORDER BY mail_next_at LIMIT $3 FOR UPDATE SKIP LOCKED)
               RETURNING *""", now, now + timedelta(seconds=self._s.sign_in_mail_lease_seconds), BATCH)

    async def work_once(self) -> int:
        """Claim and send what is due; the number of rows handled."""
        rows = await self._claim(self._clock())
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        s, now = self._s, self._clock()
        who = web_session.subject_of(row["email"])
        secret = s.session_secret.get_secret_value().encode()
        token = token_for(secret, row["link_id"])
        person = self._staff.get(row["email"])
        if now >= row["expires_at"]:
            await self._mark(row, "expired", "the link expired before it could be mailed")
            log.warning("sign-in link expired before it was mailed", principal=who, attempts=row["mail_attempts"])
            return
        if person is None or token_hash(token) != row["token_hash"]:
            # Left the directory since, or the session secret changed: this link can never work.
            await self._mark(row, "failed", "no longer in the staff directory, or the session secret changed")
            log.warning("sign-in link dropped before mailing", principal=who)
            return
        config = s.smtp_config()
        message = smtp.text_message(
            config, to=row["email"], subject=SUBJECT, message_id=f"<{row['link_id']}@{MESSAGE_ID_DOMAIN}>",
            date=row["created_at"], text=letter(person["name"], f"{s.public_base_url}/masuk/{token}",
                                                row["expires_at"]))
        result = await self._send(config, message, row["email"])
        attempts = row["mail_attempts"] + 1
        if result.sent:
            await self._mark(row, "sent", None, attempts=attempts)
            log.info("sign-in link mailed", principal=who, attempts=attempts)
        elif result.outcome == "permanent" or attempts >= s.sign_in_mail_max_attempts:
            await self._mark(row, "failed", result.detail, attempts=attempts)
            log.warning("sign-in link could not be mailed; given up", principal=who, attempts=attempts,
                        error=result.detail)
        else:
            delay = self.retry_delay(attempts)
            await self._mark(row, "pending", result.detail, attempts=attempts,
                             next_at=self._clock() + timedelta(seconds=delay))
            log.warning("sign-in link not mailed yet; will retry", principal=who, attempts=attempts,
                        retry_in_seconds=round(delay, 1), error=result.detail)

    def retry_delay(self, attempts: int) -> float:
        delays = backoff_delays(base=self._s.sign_in_mail_backoff_base_seconds,
                                cap=self._s.sign_in_mail_backoff_max_seconds)
        for _ in range(attempts - 1):
            next(delays)
        return next(delays)

    async def _mark(self, row: asyncpg.Record, state: str, error: str | None, *, attempts: int | None = None,
                    next_at: datetime | None = None) -> None:
        await self._pool.execute(
            "UPDATE sign_in_links SET mail_state = $2, mail_error = $3, mail_attempts = $4, mail_next_at = $5 "
            "WHERE token_hash = $1", row["token_hash"], state, error,
            row["mail_attempts"] if attempts is None else attempts, next_at)
