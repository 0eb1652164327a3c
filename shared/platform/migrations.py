"""A small runner for numbered SQL migrations.

Each component (the shared messaging tables, then the service's own tables) keeps its
files as `NNNN_name.sql`. Applied versions are recorded with a checksum; the runner
refuses to run when the database is ahead of the code or a file changed after it was
applied. An advisory lock keeps two replicas starting together from racing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

from shared.platform.logging import get_logger

log = get_logger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(component: str, package: str, folder: str = "migrations") -> list[Migration]:
    root: Traversable = resources.files(package).joinpath(folder)
    found = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(component, int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"{component}: migrations must be numbered 0001.. without gaps, found {versions}")
    return found


def messaging() -> list[Migration]:
    """The shared messaging tables (inbox, outbox, timers, dead letters, operators' skips): every
    service's first migration set, and the schema of any test or benchmark that uses the platform."""
    return load("messaging", "shared.platform", "sql")


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[Migration]:
    """Apply what is missing, in order, each file in its own transaction. Returns what ran."""
    applied_now: list[Migration] = []
    lock_key = int.from_bytes(hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True)
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'SET search_path TO "{schema}", public')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL,
                   version integer NOT NULL,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
        done = {(r["component"], r["version"]): r["checksum"] for r in rows}
        for component in {m.component for m in migrations}:
            known = max((m.version for m in migrations if m.component == component), default=0)
            ahead = [v for (c, v) in done if c == component and v > known]
            if ahead:
                raise MigrationError(
                    f"{schema}.{component} is at version {max(ahead)} but this code knows only up to {known}; "
                    "refusing to run an older release against a newer database"
                )
        for migration in migrations:
            key = (migration.component, migration.version)
            if key in done:
                if done[key] != migration.checksum:
                    raise MigrationError(
                        f"{schema}.{migration.component} migration {migration.version:04d}_{migration.name} "
                        "changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    migration.component,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migration applied", schema=schema, component=migration.component,
                     version=migration.version, migration=migration.name)
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied_now
