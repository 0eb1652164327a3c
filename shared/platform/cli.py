"""The command line every service offers: serve, migrate, and API key management.

    python -m services.<name>                      # serve (the default)
    python -m services.<name> migrate
    python -m services.<name> keys issue --name "Disnaker Lombok Barat" --role region_operator --region 52.01
    python -m services.<name> keys revoke KEY_ID
    python -m services.<name> keys list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.contracts.roles import Role
from shared.platform import migrations
from shared.platform.auth import ApiKeyStore
from shared.platform.db import create_pool
from shared.platform.logging import configure_logging
from shared.platform.settings import ServiceSettings, database_only

S = TypeVar("S", bound=ServiceSettings)


def main(
    argv: list[str] | None,
    *,
    settings_factory: Callable[[], S],
    build: Callable[[S], tuple[Any, Any]],
    migration_sets: Callable[[], list[list[migrations.Migration]]],
) -> int:
    parser = argparse.ArgumentParser(prog=None)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("openapi", help="print the HTTP API's OpenAPI document (JSON) and exit")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    issue = keys.add_parser("issue", help="issue a key; the token is printed once")
    issue.add_argument("--name", required=True)
    issue.add_argument("--role", required=True, choices=[r.value for r in Role])
    issue.add_argument("--region", help="region code, for region operators")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.add_parser("list", help="list keys (never their secrets)")
    args = parser.parse_args(argv)

    try:
        if args.command == "migrate":
            with database_only():  # the migration Job holds the database URL and nothing else
                settings = settings_factory()
        else:
            settings = settings_factory()
    except ValidationError as exc:
        # pydantic's own message quotes the input (the environment, secrets included): reasons only.
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"])
            print(f"error: configuration refused: {(where + ': ') if where else ''}{error['msg']}", file=sys.stderr)
        return 2
    if args.command == "openapi":
        _, app = build(settings)  # builds the app only; nothing connects
        print(openapi_json(app))
        return 0
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    command = args.command or "serve"
    if command == "serve":
        runtime, app = build(settings)
        asyncio.run(runtime.serve(app))
        return 0
    return asyncio.run(_admin(args, settings, migration_sets()))


def openapi_json(app: Any) -> str:
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True)


async def _admin(args: argparse.Namespace, settings: ServiceSettings, sets: list[list[migrations.Migration]]) -> int:
    pool = await create_pool(settings.database_url.get_secret_value(), settings.db_schema, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, settings.db_schema, [m for group in sets for m in group])
        if args.command == "migrate":
            return 0
        store = ApiKeyStore(pool, settings.api_key_pepper)
        if args.keys_command == "issue":
            try:
                token, principal = await store.issue(name=args.name, role=Role(args.role), region_code=args.region)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(token)
            print(f"key id {principal.key_id}: {principal.role.value}"
                  + (f" for {principal.region_code}" if principal.region_code else ""), file=sys.stderr)
            return 0
        if args.keys_command == "revoke":
            if await store.revoke(args.key_id):
                print(f"revoked {args.key_id}", file=sys.stderr)
                return 0
            print(f"error: no active key {args.key_id}", file=sys.stderr)
            return 1
        for row in await store.list():
            state = "revoked" if row["revoked_at"] else "active" if row["peppered"] else "active, unpeppered"
            print(f"{row['key_id']}\t{row['role']}\t{row['region_code'] or '-'}\t{state}\t{row['name']}")
        return 0
    finally:
        await pool.close()
