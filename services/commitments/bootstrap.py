"""Composition root: wires settings, runtime, consumers and HTTP routes."""

from __future__ import annotations

from fastapi import FastAPI

from shared import migrations
from shared.http import create_app
from shared.contracts import topics
from shared.runtime import Runtime

from .settings import CommitmentsSettings


def migration_sets() -> list[list[migrations.Migration]]:
    return [migrations.load("messaging", "shared", "sql")]


def build(settings: CommitmentsSettings) -> tuple[Runtime, FastAPI]:
    runtime = Runtime(settings, migration_sets=migration_sets(), topics_out=[topics.COMMITMENTS_EVENTS])
    app = create_app("NTB Rakor: commitments", "FY2026 budget commitments of the ten regencies/cities and their review.")
    app.state.runtime = runtime
    return runtime, app
