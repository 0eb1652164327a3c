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
    event_channels = {name for name in committed["channels"] if not name.endswith(".dlq")}
    assert event_channels == {spec.type for spec in registry}


def test_asyncapi_names_the_real_headers_and_the_dead_letter_topics():
    """The correlation id is read from ce_correlationid (not FastStream's correlation_id); ce_* headers and the
    dead-letter topics of every consumed topic are described."""
    doc = yaml.safe_load(document())
    for message in doc["components"]["messages"].values():
        assert "correlation_id" not in json.dumps(message)
    submit = doc["components"]["messages"]["ntb.commitments.commitment.submit.v1:SubscribeMessage"]
    assert submit["correlationId"]["location"] == "$message.header#/ce_correlationid"
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert {"ce_id", "ce_source", "ce_type", "ce_specversion"} <= set(headers["required"])
    assert headers["properties"]["ce_id"]["maxLength"] == 200
    assert {"ntb.commitments.inbound.dlq", "ntb.bpjs.realization.dlq"} <= set(doc["channels"])
    inbound = doc["channels"]["ntb.commitments.commitment.submit.v1"]["description"]
    assert "takes exactly: ntb.commitments.commitment.submit.v1." in inbound


@pytest.mark.parametrize("service", ["invitations", "commitments", "notifications"])
def test_openapi_document_matches_the_service(service):
    """deploy/openapi/<service>.json is what the service's app generates today."""
    module = __import__(f"services.{service}.bootstrap", fromlist=["build"])
    settings_module = __import__(f"services.{service}.settings", fromlist=["x"])
    settings_cls = next(v for k, v in vars(settings_module).items() if k.endswith("Settings") and k != "ServiceSettings")
    _, app = module.build(settings_cls())
    committed = json.loads((ROOT / f"deploy/openapi/{service}.json").read_text())
    assert committed == json.loads(openapi_json(app)), f"OpenAPI of {service} drifted: run `make contracts`"
