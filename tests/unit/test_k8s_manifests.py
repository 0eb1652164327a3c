"""deploy/k8s renders (kustomize's features this project uses, in Python) and validates offline
against the Kubernetes API schemas shipped by kubernetes-validate; the parts that keep a
rollout safe (probes, replicas, disruption budgets, grace period, secrets) are checked as such."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.commitments.settings import CommitmentsSettings
from services.invitations.settings import InvitationsSettings
from services.notifications.settings import NotificationsSettings
from shared.platform.kafka import GRACEFUL_TIMEOUT_SECONDS
from shared.platform.kafka_security import KafkaSecurity
from shared.platform.runtime import OUTBOX_DRAIN_SECONDS

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.31"
SETTINGS = {"invitations": InvitationsSettings, "commitments": CommitmentsSettings,
            "notifications": NotificationsSettings}
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests: maps merge, named lists merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        merged = [copy.deepcopy(i) for i in base]
        for item in patch:
            at = next((k for k, b in enumerate(merged) if b.get("name") == item["name"]), None)
            if at is None:
                merged.append(item)
            else:
                merged[at] = _merge(merged[at], item)
        return merged
    return patch


def render(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= SUPPORTED, f"{folder}: kustomize features this renderer lacks"
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        body = yaml.safe_load((folder / patch["path"]).read_text())
        targets = [d for d in docs if d["kind"] == body["kind"] and d["metadata"]["name"] == body["metadata"]["name"]]
        assert len(targets) == 1, f"patch {patch['path']} matches {len(targets)} resources"
        docs[docs.index(targets[0])] = _merge(targets[0], body)
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def _by(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(K8S / "overlays" / request.param)


def test_there_are_overlays_for_production_and_staging() -> None:
    assert {"production", "staging"} <= set(OVERLAYS)


def test_every_rendered_object_and_every_secret_validates_against_the_kubernetes_schemas(overlay) -> None:
    secrets = list(yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()))
    for doc in overlay + secrets:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_does_refuse_a_broken_manifest(overlay) -> None:
    broken = copy.deepcopy(_by(overlay, "Deployment")["commitments"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"x": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_each_service_is_a_deployment_of_at_least_two_pods_with_probes_and_resources(overlay) -> None:
    deployments = _by(overlay, "Deployment")
    assert set(deployments) == set(SETTINGS)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) | set(container["resources"]["limits"])
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
        port = {e["name"]: e.get("value") for e in container["env"]}[f"{name.upper()}_HTTP_PORT"]
        assert container["ports"][0]["containerPort"] == int(port)


def test_each_deployment_has_a_disruption_budget_that_selects_its_pods(overlay) -> None:
    budgets = _by(overlay, "PodDisruptionBudget")
    for name, deployment in _by(overlay, "Deployment").items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert budgets[name]["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_pods_get_longer_to_stop_than_the_services_drain_takes(overlay) -> None:
    drain = GRACEFUL_TIMEOUT_SECONDS + OUTBOX_DRAIN_SECONDS
    for deployment in _by(overlay, "Deployment").values():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain + 10


def test_migrations_and_topics_are_jobs(overlay) -> None:
    jobs = _by(overlay, "Job")
    migrate = [c["command"] for c in jobs["ntb-migrations"]["spec"]["template"]["spec"]["containers"]]
    assert sorted(migrate) == sorted(["python", "-m", f"services.{s}", "migrate"] for s in SETTINGS)
    (topics,) = jobs["ntb-topics"]["spec"]["template"]["spec"]["containers"]
    command = topics["command"]
    assert command[:5] == ["python", "-m", "shared.ntbctl.commands", "topics", "apply"]
    assert command[command.index("--replication") + 1] == "3" and command[command.index("--min-insync") + 1] == "2"


def test_every_secret_reference_resolves_and_secrets_never_sit_in_plain_env(overlay) -> None:
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())}
    for doc in overlay:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
        for container in _containers(doc):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], ref
                elif any(w in env["name"] for w in ("SECRET", "PASSWORD", "PEPPER", "DATABASE_URL")):
                    pytest.fail(f"{env['name']} is set in plain text in {doc['metadata']['name']}")


def test_the_environment_given_is_what_the_settings_read_and_it_validates(overlay, tmp_path: Path) -> None:
    config = _by(overlay, "ConfigMap")["ntb-config"]["data"]
    assert config["TOPICS_PROVISION"] == "verify"
    for name, deployment in _by(overlay, "Deployment").items():
        cls = SETTINGS[name]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        prefix = cls.model_config["env_prefix"]
        known = ({"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "TOPIC_PREFIX", "TOPICS_PROVISION"}
                 | {prefix + f.upper() for f in cls.model_fields}
                 | {"KAFKA_" + f.upper() for f in KafkaSecurity.model_fields})
        names = {e["name"] for e in container["env"]} | set(config)
        assert names <= known, names - known
        given = {e["name"]: e.get("value", "a-secret-from-the-cluster-of-32-characters-or-more")
                 for e in container["env"]}
        settings = cls(**{k.removeprefix(prefix).lower(): v for k, v in given.items()
                          if k.startswith(prefix)},
                       database_url="postgresql://ntb:a-secret-from-the-cluster-of-32-characters@postgres/ntb",
                       kafka_security=KafkaSecurity(sasl_username=name, sasl_password="x",
                                                    security_protocol=config["KAFKA_SECURITY_PROTOCOL"]))
        assert settings.topic_replication == 3 and settings.topic_min_insync_replicas == 2
        assert settings.http_host == "0.0.0.0"


def test_staging_keeps_its_topics_apart_by_prefix() -> None:
    staging = _by(render(K8S / "overlays" / "staging"), "ConfigMap")["ntb-config"]["data"]
    assert staging["TOPIC_PREFIX"] == "staging."
    assert staging["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"  # the patch merged, not replaced


def test_the_migration_job_runs_each_migrate_with_what_it_is_given(overlay) -> None:
    """Each `migrate` container validates in production with its environment alone (the database
    URL; no RSVP, SMTP, webhook or pepper secret), as `python -m services.<name> migrate` reads it."""
    from shared.platform.settings import database_only

    job = _by(overlay, "Job")["ntb-migrations"]
    containers = {c["command"][2].removeprefix("services."): c for c in job["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == set(SETTINGS)
    for name, container in containers.items():
        cls = SETTINGS[name]
        assert container["command"] == ["python", "-m", f"services.{name}", "migrate"]
        prefix = cls.model_config["env_prefix"]
        given = {e["name"]: e.get("value") for e in container["env"]}
        assert set(given) <= {"DATABASE_URL"} | {prefix + f.upper() for f in cls.model_fields}, given
        assert not any(w in n for n in given for w in ("SECRET", "PASSWORD", "PEPPER")), given
        with database_only():
            cls(**{k.removeprefix(prefix).lower(): v for k, v in given.items() if k.startswith(prefix)},
                environment="production",
                database_url="postgresql://ntb:a-secret-from-the-cluster-of-32-characters@postgres/ntb")
