"""docker-compose.yml and its secured overlay agree with the compose specification and with what
the code reads. No Docker engine runs here to try them: the files are validated offline against
the compose-spec JSON schema (vendored by check-jsonschema), merged as `docker compose -f A -f B`
merges them, and every service's environment is fed to the settings classes that read it."""

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.commitments.settings import CommitmentsSettings
from services.invitations.settings import InvitationsSettings
from services.notifications.settings import NotificationsSettings
from shared.contracts import kafka_acls
from shared.platform.kafka_security import KafkaSecurity

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"invitations": InvitationsSettings, "commitments": CommitmentsSettings,
            "notifications": NotificationsSettings}
FILES = ("docker-compose.yml", "docker-compose.secured.yml")
# One-shots run to completion (the others wait for `service_completed_successfully`); every
# other service runs for good and must say when it is healthy.
ONE_SHOTS = {"topics", "kafka-certs", "kafka-acls"}


class _Override:
    def __init__(self, value: Any) -> None:
        self.value = value


class _ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: `!override` / `!reset` tags of the merge rules."""


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> _Override:
    if isinstance(node, yaml.SequenceNode):
        return _Override(loader.construct_sequence(node, deep=True))
    if isinstance(node, yaml.MappingNode):
        return _Override(loader.construct_mapping(node, deep=True))
    return _Override(loader.construct_scalar(node))


_ComposeLoader.add_constructor("!override", _override)
_ComposeLoader.add_constructor("!reset", lambda loader, node: _Override(None))


def _load(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass


def _plain(value: Any) -> Any:
    """The file as the schema sees it (tags resolved)."""
    if isinstance(value, _Override):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("x-")} if "services" in value else \
            {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _merge(base: Any, extra: Any) -> Any:
    """Compose's merge of a later file: mappings merge, `!override` replaces, ports and volumes add up."""
    if isinstance(extra, _Override):
        return _plain(extra.value)
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(base[key], value) if key in base else _plain(value)
        return merged
    if isinstance(base, list) and isinstance(extra, list):
        return base + [v for v in _plain(extra) if v not in base]
    return _plain(extra)


def _compose() -> dict:
    return _plain(_load("docker-compose.yml"))


def _secured() -> dict:
    return _merge(_compose(), _load("docker-compose.secured.yml"))


# What an operator would put in .env: generated values, as `secrets.token_urlsafe(32)` gives.
OPERATOR_ENV = {"POSTGRES_PASSWORD": "Qm3v9TzR2kLp8WxY", "INVITATIONS_RSVP_SECRET": "h7Kq2mZp9Xr4Tv8Ns1Lw6Jb3Yc5Df0Ga",
                "NOTIFICATIONS_SMTP_USERNAME": "notifikasi", "NOTIFICATIONS_SMTP_PASSWORD": "Wf4Rk8Tz2Hq6Np",
                "NOTIFICATIONS_WEBHOOK_SECRET": "Zx9Cv2Bn7Mq4Lk8Jh3Gf6Ds1Ap5Ow0Ie",
                "COMMITMENTS_SESSION_SECRET": "Pd4Hs8Kw2Nx6Qb9Tm3Vr7Yc1Lf5Zg0Je",
                "API_KEY_PEPPER": "Vb5Nm1Qw7Er3Ty9Ui2Op6As4Df8Gh0Jk",
                "KAFKA_ADMIN_PASSWORD": "a1d2m3i4n5p6a7s8s9w0o1r2", "KAFKA_INVITATIONS_PASSWORD": "i9n8v7i6t5a4t3i2o1n0s9p8",
                "KAFKA_COMMITMENTS_PASSWORD": "c1o2m3m4i5t6m7e8n9t0s1p2",
                "KAFKA_NOTIFICATIONS_PASSWORD": "n9o8t7i6f5i4c3a2t1i0o9n8",
                "COMMITMENTS_SMTP_USERNAME": "rakor-masuk", "COMMITMENTS_SMTP_PASSWORD": "Gk7Wp3Xn9Rt5Bm"}
_VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` (the last refuses an unset VAR)."""

    def one(match: re.Match) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(one, value)


def _env_of(service: dict, env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in service["environment"].items()}


def test_each_service_runs_its_own_module():
    """Each service's command is `python -m services.<name>` and that module exists."""
    services = _compose()["services"]
    for name in SETTINGS:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert (ROOT / "services" / name / "__main__.py").exists()


def test_service_environment_names_settings_the_code_reads():
    """Every variable given to a service is one its settings class reads, and values validate."""
    services = _compose()["services"]
    for name, cls in SETTINGS.items():
        env = _env_of(services[name], OPERATOR_ENV)
        prefix = cls.model_config["env_prefix"]
        known = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "TOPIC_PREFIX", "NTB_ENV", "HEALTH_PORT"} | {
            prefix + field.upper() for field in cls.model_fields
        }
        assert set(env) <= known, set(env) - known
        settings = cls(**{k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)},
                       kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], database_url=env["DATABASE_URL"],
                       environment=env["NTB_ENV"])
        assert settings.environment == "production"
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        if name == "notifications":
            assert settings.smtp_host == "mailcatcher"
            assert compose_smtp_port(_compose()) == settings.smtp_port
        assert str(settings.http_port) in [p.split(":")[1] for p in services[name]["ports"]]


def compose_smtp_port(compose: dict) -> int:
    """The mail catcher's SMTP port: mailpit listens on 1025."""
    assert compose["services"]["mailcatcher"]["image"].startswith("axllent/mailpit")
    return 1025


def test_services_wait_for_healthy_kafka_and_postgres():
    """Services start only after the broker and the database report healthy."""
    compose = _compose()
    for name in SETTINGS:
        deps = compose["services"][name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "mailcatcher" in compose["services"]


def test_dockerfile_installs_the_project():
    """The image copies the code it runs, installs the hashed lock, then the project without deps."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in ("COPY shared", "COPY services", "--require-hashes --no-deps -r requirements/runtime.lock",
                 "pip install --no-deps --no-build-isolation ."):
        assert line in dockerfile
    assert dockerfile.index("requirements/runtime.lock") < dockerfile.index("COPY shared")


@pytest.mark.parametrize("compose", [_compose, _secured], ids=["plain", "secured"])
def test_compose_ships_no_usable_secret(compose):
    """Every secret is a required variable: without it `docker compose up` stops; none has a literal value."""
    secret_names = ("PASSWORD", "SECRET", "PEPPER", "DATABASE_URL", "SMTP_USERNAME")
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in secret_names):
                assert "${" in str(value) and ":?" in str(value), f"{name}: {key} has a literal value"
                with pytest.raises(KeyError):
                    interpolate(str(value), {})
    for name in FILES:  # nor anywhere else in the files (a command line, a healthcheck)
        text = (ROOT / name).read_text()
        assert not re.search(r"(?i)(password|secret|pepper)[\"']?\s*[:=]\s*[\"']?(?!\$\{)[A-Za-z0-9]{6,}", text), name


@pytest.mark.parametrize("name", FILES)
def test_each_compose_file_is_valid_against_the_compose_specification(name):
    """The compose-spec JSON schema (as `docker compose config` would check it) accepts each file."""
    schema = json.loads((resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    document = _plain(_load(name))
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    # The check has teeth: a misspelt key is refused.
    broken = copy.deepcopy(document)
    broken["services"]["invitations"]["helthcheck"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("compose", [_compose, _secured], ids=["plain", "secured"])
def test_every_long_running_service_has_a_healthcheck_and_one_shots_are_awaited(compose):
    services = compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert "healthcheck" not in service and "restart" not in service, name
        else:
            assert service["healthcheck"]["test"], name
    awaited = {dep for s in services.values() for dep, how in (s.get("depends_on") or {}).items()
               if how["condition"] == "service_completed_successfully"}
    assert awaited == ONE_SHOTS & set(services)
    for name in SETTINGS:  # the applications: alive and ready
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "/healthz" in probe and "/readyz" in probe


def test_the_secured_option_logs_each_service_in_as_its_own_principal():
    """With the overlay every client speaks SASL_SSL to the TLS listener as its principal of
    shared/contracts/kafka_acls.py, trusting the CA the kafka-certs one-shot made; the settings validate."""
    compose = _secured()
    services = compose["services"]
    broker = (ROOT / "deploy/compose/kafka-secured.sh").read_text()
    for name in SETTINGS:
        env = _env_of(services[name], OPERATOR_ENV)
        assert env["KAFKA_SASL_USERNAME"] == name and name in kafka_acls.principals()
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9094" and "INTERNAL://:${KAFKA_INTERNAL_PORT:-9094}" in broker
        assert env["KAFKA_SSL_CAFILE"] == "/secrets/ca.pem" and "kafka-secrets:/secrets:ro" in services[name]["volumes"]
        security = KafkaSecurity.model_construct(**{k.removeprefix("KAFKA_").lower(): v for k, v in env.items()
                                                   if k.startswith("KAFKA_") and k != "KAFKA_BOOTSTRAP_SERVERS"})
        assert security.uses_sasl and security.uses_tls and security.sasl_mechanism == "SCRAM-SHA-512"
        known = {"KAFKA_" + f.upper() for f in KafkaSecurity.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
        assert {k for k in env if k.startswith("KAFKA_")} <= known
        # The broker creates exactly the SCRAM users the clients log in as, from the same variables.
        password_var = f"KAFKA_{name.upper()}_PASSWORD"
        assert f"[name={name},password=${password_var}]" in broker
        assert services[name]["environment"]["KAFKA_SASL_PASSWORD"].startswith("${" + password_var + ":?")
    assert services["topics"]["environment"]["KAFKA_SASL_USERNAME"] == kafka_acls.ADMIN
    assert set(re.findall(r"\[name=([a-z-]+),", broker)) == {kafka_acls.ADMIN, *SETTINGS}
    assert services["kafka"]["ports"] == ["127.0.0.1:29094:29094"]  # no plaintext listener left on the host
    assert services["kafka"]["entrypoint"] == ["/bin/sh", "/ntb/kafka-secured.sh"]
    for name in SETTINGS:
        assert services[name]["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"


def test_the_compose_acl_script_is_generated_from_the_acl_definition():
    """deploy/compose/kafka-acls.sh is `python -m shared.contracts.kafka_acls --compose` today (`make contracts`)."""
    committed = (ROOT / "deploy/compose/kafka-acls.sh").read_text()
    assert committed == kafka_acls.compose_script(), "deploy/compose/kafka-acls.sh drifted: run `make contracts`"
    granted = set()
    for line in committed.splitlines():
        if line.startswith("kafka-acls.sh "):
            principal = re.search(r"--allow-principal User:(\S+)", line)[1]
            ops = tuple(re.findall(r"--operation (\S+)", line))
            pattern = re.search(r"--resource-pattern-type (\S+)", line)[1].upper()
            for resource, name in re.findall(r"--(topic|group) (\S+)", line):
                granted.add((principal, ops, resource, name, pattern))
    assert granted == {(b.principal, b.operations, b.resource, b.name, b.pattern) for b in kafka_acls.bindings()}



def test_services_are_healthy_only_when_ready_and_start_after_the_topics_exist():
    """Each service's healthcheck asks its own /readyz; topics are provisioned first, not auto-created."""
    compose = _compose()
    for name, cls in SETTINGS.items():
        service = compose["services"][name]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["HEALTH_PORT"] == str(cls().http_port)
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert compose["services"]["topics"]["command"][-2:] == ["topics", "apply"]
    assert compose["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
