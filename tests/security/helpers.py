"""What every security test needs: the write routes of an app, principals, and a state fingerprint."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi.routing import iter_route_contexts

from shared.contracts.roles import Role
from shared.platform.auth import ApiKeyStore
from tests.integration.conftest import issue_key

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def all_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers flattened."""
    return {(method, route.path) for route in iter_route_contexts(app.routes)
            for method in (route.methods or set()) - {"HEAD", "OPTIONS"}}


def write_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every state-changing route the app serves."""
    return {(method, path) for method, path in all_routes(app) if method in WRITE_METHODS}


@dataclass(frozen=True)
class Caller:
    """One column of the matrix: who calls (label) and the Authorization header it sends."""

    label: str
    headers: dict[str, str]
    role: Role | None = None
    region: str | None = None


async def callers(runtime: Any, region: str, other_region: str) -> list[Caller]:
    """No key, a malformed key, a wrong secret, a revoked key, then every role (region keys for both regions)."""

    async def bearer(role: Role, reg: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await issue_key(runtime, role, reg)}"}

    revoked_token = await issue_key(runtime, Role.OPERATOR)
    await ApiKeyStore(runtime.pool, runtime.settings.api_key_pepper).revoke(revoked_token.split("_")[1])
    revoked_org = await issue_key(runtime, Role.ORGANIZER)
    await ApiKeyStore(runtime.pool, runtime.settings.api_key_pepper).revoke(revoked_org.split("_")[1])
    good = await issue_key(runtime, Role.ORGANIZER)
    wrong_secret = "_".join(good.split("_")[:2]) + "_" + "x" * 43
    return [
        Caller("no key", {}),
        Caller("malformed key", {"Authorization": "Bearer not-a-key"}),
        Caller("basic auth", {"Authorization": "Basic b3JnYW5pemVyOnB3"}),
        Caller("wrong secret", {"Authorization": f"Bearer {wrong_secret}"}),
        Caller("revoked operator key", {"Authorization": f"Bearer {revoked_token}"}),
        Caller("revoked organizer key", {"Authorization": f"Bearer {revoked_org}"}),
        Caller("organizer", await bearer(Role.ORGANIZER), Role.ORGANIZER),
        Caller(f"region_operator {region}", await bearer(Role.REGION_OPERATOR, region), Role.REGION_OPERATOR, region),
        Caller(f"region_operator {other_region}", await bearer(Role.REGION_OPERATOR, other_region),
               Role.REGION_OPERATOR, other_region),
        Caller("disnakertrans_reviewer", await bearer(Role.DISNAKERTRANS_REVIEWER), Role.DISNAKERTRANS_REVIEWER),
        Caller("bpjs_reviewer", await bearer(Role.BPJS_REVIEWER), Role.BPJS_REVIEWER),
        Caller("operator", await bearer(Role.OPERATOR), Role.OPERATOR),
    ]


# The relay deletes outbox rows as it publishes them, without any request; the id sequence
# moves on every insert (even one rolled back), so it stands for the table.
_BY_SEQUENCE = {"outbox": "outbox_id_seq"}
_SKIPPED = {"api_keys", "schema_migrations"}


async def fingerprint(db: asyncpg.Connection, schema: str, skip: Iterable[str] = ()) -> dict[str, str]:
    """An md5 of every table's rows: any insert, update or delete by a request changes it."""
    tables = [r["tablename"] for r in await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema)]
    result = {}
    for table in tables:
        if table in _SKIPPED or table in set(skip):
            continue
        if table in _BY_SEQUENCE:
            result[table] = await db.fetchval(
                f'SELECT last_value::text || is_called::text FROM "{schema}"."{_BY_SEQUENCE[table]}"')
            continue
        result[table] = await db.fetchval(
            f'SELECT md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) '
            f'FROM "{schema}"."{table}" t')
    return result


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
