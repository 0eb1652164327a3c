"""Principals and API keys for the HTTP edges.

A key is `ntbk_<key_id>_<secret>`, sent as `Authorization: Bearer <key>`. Only an
HMAC-SHA256 of the secret, keyed with the service's pepper (<SERVICE>_API_KEY_PEPPER or
<SERVICE>_API_KEY_PEPPER_FILE, shared.platform.settings), is stored, as `hmac-sha256:<hex>`. The
secret is 32 random bytes, so a slow password hash adds nothing; the pepper, kept out of the
database, makes a copy of the api_keys table (a backup, a read-only SQL hole) useless to
anyone without the service's configuration.

Keys stored before the pepper existed hold a bare SHA-256 (64 hex digits, no scheme). They
still authenticate, and the first successful use rewrites the row in the peppered form, so a
deployment moves over as its keys are used; `keys list` marks the ones not yet moved
("unpeppered"), which an operator can revoke and reissue. Changing the pepper invalidates
every key (there is no key to move them with): reissue them. Keys are issued and revoked
from each service's CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from shared.contracts.regions import normalize_region_code
from shared.contracts.roles import Role

PREFIX = "ntbk"
PEPPERED = "hmac-sha256:"  # scheme of a stored hash; a bare 64-hex SHA-256 is the unpeppered form



@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    role: Role
    region_code: str | None = None

    def can_act_for(self, region_code: str) -> bool:
        return self.role is not Role.REGION_OPERATOR or self.region_code == region_code


def _peppered(secret: str, pepper: bytes) -> str:
    return PEPPERED + hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def _unpeppered(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class ApiKeyStore:
    def __init__(self, pool: asyncpg.Pool, pepper: SecretStr | None) -> None:
        # Settings always supply one (production refuses to start without it; development
        # mode fills in its built-in value), so a missing pepper is a wiring mistake.
        if pepper is None or not pepper.get_secret_value():
            raise ValueError("an API key store needs the service's API key pepper")
        self._pool = pool
        self._pepper = pepper.get_secret_value().encode()

    async def issue(self, *, name: str, role: Role, region_code: str | None = None) -> tuple[str, Principal]:
        if role is Role.REGION_OPERATOR:
            if region_code is None:
                raise ValueError("a region operator key needs a region code")
            region_code = normalize_region_code(region_code)
        elif region_code is not None:
            raise ValueError(f"role {role} is not tied to a region")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        await self._pool.execute(
            "INSERT INTO api_keys (key_id, secret_hash, name, role, region_code) VALUES ($1, $2, $3, $4, $5)",
            key_id, _peppered(secret, self._pepper), name, role.value, region_code,
        )
        return f"{PREFIX}_{key_id}_{secret}", Principal(key_id, name, role, region_code)

    async def revoke(self, key_id: str) -> bool:
        result = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )
        return bool(result == "UPDATE 1")

    async def list(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(
            "SELECT key_id, name, role, region_code, created_at, revoked_at,"
            " starts_with(secret_hash, $1) AS peppered FROM api_keys ORDER BY created_at", PEPPERED,
        )
        return rows

    async def authenticate(self, token: str) -> Principal | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self._pool.fetchrow(
            "SELECT secret_hash, name, role, region_code FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None:
            return None
        stored: str = row["secret_hash"]
        peppered = _peppered(secret, self._pepper)
        if stored.startswith(PEPPERED):
            if not hmac.compare_digest(stored, peppered):
                return None
        elif hmac.compare_digest(stored, _unpeppered(secret)):
            # A key from before the pepper: move it over now that its secret is at hand. The
            # condition on the old hash makes two concurrent first uses rewrite it once.
            await self._pool.execute(
                "UPDATE api_keys SET secret_hash = $2 WHERE key_id = $1 AND secret_hash = $3", key_id, peppered, stored,
            )
        else:
            return None
        return Principal(key_id, row["name"], Role(row["role"]), row["region_code"])


_bearer = HTTPBearer(auto_error=False, description="API key issued by the service's `keys issue` command")


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """FastAPI dependency: a valid key whose role is one of `roles` (401 / 403 otherwise)."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer API key",
                                headers={"WWW-Authenticate": "Bearer"})
        store: ApiKeyStore = request.app.state.api_keys
        principal = await store.authenticate(credentials.credentials)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if roles and principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            request.state.principal = principal  # the access log names who was refused
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role.value} may not do this; needs {allowed}")
        request.state.principal = principal  # for the access log (shared.platform.http_telemetry)
        return principal

    dependency.__roles__ = tuple(r.value for r in roles)  # type: ignore[attr-defined]  # read by shared.platform.http
    return dependency
