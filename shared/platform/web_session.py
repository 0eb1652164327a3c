"""Session cookies for the staff pages: signed, expiring, carrying a Principal of the API keys' roles.

The cookie is `<base64 JSON>.<HMAC-SHA256>`: who (a name, an e-mail's hash for the audit), the role
and region exactly as an API key would carry them, and the expiry. HttpOnly and SameSite=Lax always,
Secure outside development mode. Forms of signed-in pages carry a CSRF token bound to the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from fastapi import Request, Response

from shared.contracts.roles import Role
from shared.platform.auth import Principal

COOKIE = "ntb_sesi"
MAX_COOKIE = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, f"session.v1.{body}".encode(), hashlib.sha256).digest())


def subject_of(email: str) -> str:
    """The id a session is known by in logs and audit: never the address itself."""
    return "sesi:" + hashlib.sha256(email.lower().encode()).hexdigest()[:12]


def issue(secret: bytes, *, email: str, name: str, role: Role, region_code: str | None, lifetime_seconds: float,
          now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + lifetime_seconds)
    body = _b64(json.dumps({"s": subject_of(email), "n": name, "r": role.value, "g": region_code, "e": expires},
                           separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def verify(secret: bytes, cookie: str | None, now: float | None = None) -> tuple[Principal, str] | None:
    """(principal, session id) of a genuine, unexpired cookie; None for anything else."""
    if not cookie or len(cookie) > MAX_COOKIE or cookie.count(".") != 1:
        return None
    body, mac = cookie.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        return None
    try:
        data = json.loads(_unb64(body))
        role, expires = Role(data["r"]), int(data["e"])
        principal = Principal(key_id=str(data["s"]), name=str(data["n"]), role=role,
                              region_code=data["g"] if data["g"] is None else str(data["g"]))
    except (ValueError, KeyError, TypeError, RecursionError):  # signed by us, yet not a session
        return None
    if (time.time() if now is None else now) >= expires:
        return None
    return principal, mac


def set_cookie(response: Response, value: str, *, lifetime_seconds: float, development: bool) -> None:
    response.set_cookie(COOKIE, value, max_age=int(lifetime_seconds), httponly=True, samesite="lax",
                        secure=not development, path="/")


def clear_cookie(response: Response, *, development: bool) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="lax", secure=not development, path="/")


def from_request(request: Request, secret: bytes) -> tuple[Principal, str] | None:
    return verify(secret, request.cookies.get(COOKIE))


def describe(principal: Principal) -> dict[str, Any]:
    return {"principal": principal.key_id, "role": principal.role.value, "region_code": principal.region_code}
