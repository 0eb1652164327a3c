"""Migration runner and API keys on the real PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from shared.contracts.roles import Role
from shared.platform import migrations
from shared.platform.auth import ApiKeyStore
from shared.platform.db import create_pool

from .conftest import DSN

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]
PEPPER = SecretStr("Kq8vZ2mT5xR9wL3nB7cF1hJ6dP4sG0yA")


def _m(version: int, sql: str) -> migrations.Migration:
    return migrations.Migration("svc", version, f"step{version}", sql)


async def test_migrations_apply_once_in_order(schema_for, db):
    """Each file runs once; a second run applies nothing."""
    schema = schema_for("mig")
    pool = await create_pool(DSN, schema)
    try:
        async with pool.acquire() as conn:
            steps = [_m(1, "CREATE TABLE a (x int)"), _m(2, "ALTER TABLE a ADD COLUMN y int")]
            assert len(await migrations.migrate(conn, schema, steps)) == 2
            assert await migrations.migrate(conn, schema, steps) == []
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == 2
    finally:
        await pool.close()


async def test_runner_refuses_older_code_and_edited_files(schema_for):
    """A database ahead of the code, or a changed applied file, stops the runner with a reason."""
    schema = schema_for("mig")
    pool = await create_pool(DSN, schema)
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, schema, [_m(1, "CREATE TABLE a (x int)"), _m(2, "SELECT 1")])
            with pytest.raises(migrations.MigrationError, match="refusing"):
                await migrations.migrate(conn, schema, [_m(1, "CREATE TABLE a (x int)")])
            with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
                await migrations.migrate(conn, schema, [_m(1, "CREATE TABLE a (x bigint)"), _m(2, "SELECT 1")])
    finally:
        await pool.close()


async def test_failed_migration_leaves_nothing_behind(schema_for, db):
    """A migration that fails half-way is rolled back whole and not recorded."""
    schema = schema_for("mig")
    pool = await create_pool(DSN, schema)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(Exception, match="no_such_table"):
                await migrations.migrate(conn, schema, [_m(1, "CREATE TABLE b (x int); SELECT * FROM no_such_table")])
        assert await db.fetchval("SELECT to_regclass($1)", f'"{schema}".b') is None
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == 0
    finally:
        await pool.close()


async def test_keys_are_stored_hashed_authenticate_and_revoke(schema_for, db):
    """An issued key authenticates with its role and region; the secret is not stored; revoked keys fail."""
    schema = schema_for("keys")
    pool = await create_pool(DSN, schema)
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, schema, migrations.messaging())
        store = ApiKeyStore(pool, PEPPER)
        token, principal = await store.issue(name="Disnaker Dompu", role=Role.REGION_OPERATOR, region_code="5205")
        assert principal.region_code == "52.05"
        secret = token.split("_")[2]
        stored = await db.fetchval(f'SELECT secret_hash FROM "{schema}".api_keys')
        assert secret not in stored
        # Peppered: the stored value is the HMAC under the pepper, not a hash anyone could recompute.
        assert stored == "hmac-sha256:" + hmac.new(PEPPER.get_secret_value().encode(), secret.encode(),
                                                   hashlib.sha256).hexdigest()
        assert stored.removeprefix("hmac-sha256:") != hashlib.sha256(secret.encode()).hexdigest()
        assert (await store.authenticate(token)) == principal
        # The same table read with another pepper (a copied database, a changed setting) opens nothing.
        assert await ApiKeyStore(pool, SecretStr("Another-pepper-0123456789abcdefXYZ")).authenticate(token) is None
        assert await store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert await store.revoke(principal.key_id)
        assert await store.authenticate(token) is None
        with pytest.raises(ValueError, match="needs a region"):
            await store.issue(name="x", role=Role.REGION_OPERATOR)
        with pytest.raises(ValueError, match="not tied to a region"):
            await store.issue(name="x", role=Role.BPJS_REVIEWER, region_code="52.01")
    finally:
        await pool.close()


async def test_keys_stored_before_the_pepper_still_work_and_move_to_the_peppered_hash(schema_for, db):
    """A key whose row holds the bare SHA-256 of earlier releases authenticates once with the right
    secret and is rewritten as the peppered HMAC; a wrong secret neither authenticates nor rewrites."""
    schema = schema_for("legacykeys")
    pool = await create_pool(DSN, schema)
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, schema, migrations.messaging())
        secret = "Legacy-secret-0123456789abcdefghijklmn"
        legacy = hashlib.sha256(secret.encode()).hexdigest()
        await db.execute(f'INSERT INTO "{schema}".api_keys (key_id, secret_hash, name, role) '
                         "VALUES ('a1b2c3', $1, 'old operator key', 'operator')", legacy)
        store = ApiKeyStore(pool, PEPPER)
        assert [(r["key_id"], r["peppered"]) for r in await store.list()] == [("a1b2c3", False)]
        assert await store.authenticate(f"ntbk_a1b2c3_{secret}x") is None
        assert await db.fetchval(f'SELECT secret_hash FROM "{schema}".api_keys') == legacy
        principal = await store.authenticate(f"ntbk_a1b2c3_{secret}")
        assert principal is not None and principal.role is Role.OPERATOR
        moved = await db.fetchval(f'SELECT secret_hash FROM "{schema}".api_keys')
        assert moved.startswith("hmac-sha256:") and moved != legacy
        assert [r["peppered"] for r in await store.list()] == [True]
        assert await store.authenticate(f"ntbk_a1b2c3_{secret}") == principal
        # Once moved, the bare hash is gone: only the pepper's holder can check the key.
        assert await ApiKeyStore(pool, SecretStr("Another-pepper-0123456789abcdefXYZ")).authenticate(
            f"ntbk_a1b2c3_{secret}") is None
    finally:
        await pool.close()
