"""Signed, expiring RSVP tokens: `<invitation id>.<expiry epoch seconds>.<HMAC-SHA256>`.

The signature covers both parts, so a token works for its own invitation only and its
expiry cannot be stretched. Pure: the caller passes the secret and `now`. A bad token raises
a refusal of the shared family, so the HTTP edge answers it like any other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

from shared.platform.errors import Forbidden, Gone

VERSION = "v1"
MAX_TOKEN_LENGTH = 200


class InvalidToken(Forbidden):
    """Tampered, malformed or signed with another key (403)."""


class ExpiredToken(Gone):
    """Genuine, but past its expiry (410)."""


def _sign(secret: bytes, invitation_id: uuid.UUID, expires: int) -> str:
    mac = hmac.new(secret, f"{VERSION}.{invitation_id.hex}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue(secret: bytes, invitation_id: uuid.UUID, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{invitation_id.hex}.{expires}.{_sign(secret, invitation_id, expires)}"


def verify(secret: bytes, token: str, now: datetime) -> tuple[uuid.UUID, datetime]:
    """The invitation id and expiry of a genuine, unexpired token."""
    invitation_id, expires_at = verify_signature(secret, token)
    if now >= expires_at:
        raise ExpiredToken(f"RSVP link expired at {expires_at.isoformat()}")
    return invitation_id, expires_at


def verify_signature(secret: bytes, token: str) -> tuple[uuid.UUID, datetime]:
    """The invitation id and the expiry written in a genuine token, expired or not.

    The RSVP page uses this: a meeting moved later keeps the links already mailed working, so
    the page judges the deadline from the invitation's current one, not the one in the link.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("RSVP token is malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("RSVP token is malformed")
    raw_id, raw_expires, signature = parts
    try:
        invitation_id = uuid.UUID(hex=raw_id)
        expires = int(raw_expires)
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidToken("RSVP token is malformed") from None
    if raw_id != invitation_id.hex or raw_expires != str(expires):
        # One spelling per token (no upper-case hex, dashes, "+" or leading zeros): a link is one string.
        raise InvalidToken("RSVP token is malformed")
    if not hmac.compare_digest(signature.encode(), _sign(secret, invitation_id, expires).encode()):
        raise InvalidToken("RSVP token signature is invalid (tampered, or not issued by this service)")
    return invitation_id, expires_at
