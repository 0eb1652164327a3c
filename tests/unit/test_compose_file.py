"""docker-compose.yml agrees with what the code reads (no Docker engine runs here to try it)."""

import re
from pathlib import Path

import pytest

import yaml

from services.commitments.settings import CommitmentsSettings
from services.invitations.settings import InvitationsSettings
from services.notifications.settings import NotificationsSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"invitations": InvitationsSettings, "commitments": CommitmentsSettings,
            "notifications": NotificationsSettings}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


# What an operator would put in .env: generated values, as `secrets.token_urlsafe(32)` gives.
OPERATOR_ENV = {"POSTGRES_PASSWORD": "Qm3v9TzR2kLp8WxY", "INVITATIONS_RSVP_SECRET": "h7Kq2mZp9Xr4Tv8Ns1Lw6Jb3Yc5Df0Ga",
                "NOTIFICATIONS_SMTP_USERNAME": "notifikasi", "NOTIFICATIONS_SMTP_PASSWORD": "Wf4Rk8Tz2Hq6Np",
                "NOTIFICATIONS_WEBHOOK_SECRET": "Zx9Cv2Bn7Mq4Lk8Jh3Gf6Ds1Ap5Ow0Ie",
                "COMMITMENTS_SESSION_SECRET": "Pd4Hs8Kw2Nx6Qb9Tm3Vr7Yc1Lf5Zg0Je",
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


def test_compose_ships_no_usable_secret():
    """Every secret is a required variable: without it `docker compose up` stops; none has a literal value."""
    compose = _compose()
    secret_names = ("PASSWORD", "SECRET", "DATABASE_URL", "SMTP_USERNAME")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in secret_names):
                assert "${" in str(value) and ":?" in str(value), f"{name}: {key} has a literal value"
                with pytest.raises(KeyError):
                    interpolate(str(value), {})



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
