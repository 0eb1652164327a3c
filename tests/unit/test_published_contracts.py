"""The committed AsyncAPI and OpenAPI documents match the code (run `make contracts` after a change)."""

import json
from pathlib import Path

import pytest
import yaml

from shared.contracts import kafka_acls, registry
from shared.contracts.asyncapi import document
from shared.contracts.regions import regions
from shared.contracts.topics import REGIONAL_INBOUND, regional_inbound
from shared.platform import topic_plan
from shared.platform.cli import openapi_json

ROOT = Path(__file__).resolve().parents[2]


def test_asyncapi_document_matches_the_event_registry():
    """deploy/asyncapi/asyncapi.yaml is what the registry generates today, and names every event type."""
    text = (ROOT / "deploy/asyncapi/asyncapi.yaml").read_text()
    committed = yaml.safe_load(text)
    assert committed == yaml.safe_load(document()), "AsyncAPI drifted: run `make contracts`"
    assert text == document(), "AsyncAPI is generated in another order: run `make contracts`"
    assert committed["asyncapi"] == "3.0.0"
    event_channels = {name for name in committed["channels"] if not name.endswith(".dlq")}
    assert event_channels == {spec.type for spec in registry} | set(REGIONAL_INBOUND)


def test_asyncapi_lists_every_provisioned_topic_with_who_may_write_it():
    """The channels are exactly the topics `ntbctl topics apply` provisions (shared/platform/topic_plan.py), the ten
    regional inbound topics and every DLQ included, and each names the principals the ACLs
    (shared/contracts/kafka_acls.py) let write and read it: a topic or an ACL added on one side only fails here."""
    doc = yaml.safe_load(document())
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {spec.name for spec in topic_plan.plan()}
    writers: dict[str, set[str]] = {}
    readers: dict[str, set[str]] = {}
    for b in kafka_acls.bindings():
        if b.resource == "topic":
            assert b.pattern == "LITERAL" and b.name in addresses, b  # an ACL for a topic the document lacks
            for op, seen in (("Write", writers), ("Read", readers)):
                if op in b.operations:
                    seen.setdefault(b.name, set()).add(b.principal)
    for channel in doc["channels"].values():
        acl, topic = channel["x-kafka-acl"], channel["address"]
        assert set(acl["write"]) == writers.get(topic, set()), topic
        assert set(acl["read"]) == readers.get(topic, set()), topic
    assert len(REGIONAL_INBOUND) == len(regions()) == 10
    submit = doc["channels"]["ntb.commitments.commitment.submit.v1"]["messages"]
    for code in regions():
        topic = regional_inbound(code)
        channel = doc["channels"][topic]
        assert channel["x-kafka-acl"]["write"] == [kafka_acls.regency_principal(code)]
        assert channel["x-kafka-acl"]["read"] == ["commitments"]
        assert channel["messages"] == submit and doc["operations"][topic]["action"] == "receive"
        assert doc["channels"][f"{topic}.dlq"]["x-kafka-acl"]["write"] == ["commitments"]
    # Nobody but the administrator writes the shared inbound topic on a secured cluster.
    assert doc["channels"]["ntb.commitments.commitment.submit.v1"]["x-kafka-acl"]["write"] == []


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
    settings_cls = next(v for k, v in vars(settings_module).items()
                        if k.endswith("Settings") and getattr(v, "__module__", None) == settings_module.__name__)
    _, app = module.build(settings_cls())
    committed = json.loads((ROOT / f"deploy/openapi/{service}.json").read_text())
    assert committed == json.loads(openapi_json(app)), f"OpenAPI of {service} drifted: run `make contracts`"
