"""The committed AsyncAPI and OpenAPI documents match the code (run `make contracts` after a change)."""

import json
from pathlib import Path

import pytest
import yaml

from shared.cli import openapi_json
from shared.contracts import registry
from shared.contracts.asyncapi import document

ROOT = Path(__file__).resolve().parents[2]


def test_asyncapi_document_matches_the_event_registry():
    """deploy/asyncapi/asyncapi.yaml is what the registry generates today, and names every event type."""
    committed = yaml.safe_load((ROOT / "deploy/asyncapi/asyncapi.yaml").read_text())
    assert committed == yaml.safe_load(document()), "AsyncAPI drifted: run `make contracts`"
    assert committed["asyncapi"] == "3.0.0"
    assert set(committed["channels"]) == {spec.type for spec in registry}


@pytest.mark.parametrize("service", ["invitations", "commitments", "notifications"])
def test_openapi_document_matches_the_service(service):
    """deploy/openapi/<service>.json is what the service's app generates today."""
    module = __import__(f"services.{service}.bootstrap", fromlist=["build"])
    settings_module = __import__(f"services.{service}.settings", fromlist=["x"])
    settings_cls = next(v for k, v in vars(settings_module).items() if k.endswith("Settings") and k != "ServiceSettings")
    _, app = module.build(settings_cls())
    committed = json.loads((ROOT / f"deploy/openapi/{service}.json").read_text())
    assert committed == json.loads(openapi_json(app)), f"OpenAPI of {service} drifted: run `make contracts`"
