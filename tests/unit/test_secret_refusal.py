"""Production (the default mode) refuses every missing, default, placeholder or weak secret.

Each secret is tested alone: all the others are good, so the refusal is the one under test.
The message names the variable and never quotes a value.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from services.commitments.settings import CommitmentsSettings
from services.invitations.settings import DEV_RSVP_SECRET, InvitationsSettings
from services.notifications.settings import NotificationsSettings
from shared.platform.settings import DEVELOPMENT_API_KEY_PEPPER, PUBLISHED_SECRETS, secret_problem

ROOT = Path(__file__).resolve().parents[2]
GOOD_DB = "postgresql://ntb:Qm3v9TzR2kLp8WxY@db.internal:5432/ntb"
GOOD = {
    "INVITATIONS_RSVP_SECRET": "h7Kq2mZp9Xr4Tv8Ns1Lw6Jb3Yc5Df0Ga",
    "NOTIFICATIONS_SMTP_USERNAME": "notifikasi",
    "NOTIFICATIONS_SMTP_PASSWORD": "Wf4Rk8Tz2Hq6Np",
    "NOTIFICATIONS_WEBHOOK_SECRET": "Zx9Cv2Bn7Mq4Lk8Jh3Gf6Ds1Ap5Ow0Ie",
    "DATABASE_URL": GOOD_DB,
    "COMMITMENTS_SESSION_SECRET": "Pd4Hs8Kw2Nx6Qb9Tm3Vr7Yc1Lf5Zg0Je",
    "INVITATIONS_API_KEY_PEPPER": "Vb5Nm1Qw7Er3Ty9Ui2Op6As4Df8Gh0Jk",
    "COMMITMENTS_API_KEY_PEPPER": "Lz3Xc7Vb1Nm5Qa9Ws2Ed6Rf4Tg8Yh0Uj",
    "NOTIFICATIONS_API_KEY_PEPPER": "Ik9Ol3Pm7Nj1Hb5Gv2Fc6Dx4Sz8Aq0Wr",
    "COMMITMENTS_SMTP_USERNAME": "rakor-masuk",
    "COMMITMENTS_SMTP_PASSWORD": "Gk7Wp3Xn9Rt5Bm",
}
FIELD = {"INVITATIONS_RSVP_SECRET": "rsvp_secret", "NOTIFICATIONS_SMTP_USERNAME": "smtp_username",
         "NOTIFICATIONS_SMTP_PASSWORD": "smtp_password", "NOTIFICATIONS_WEBHOOK_SECRET": "webhook_secret",
         "DATABASE_URL": "database_url", "COMMITMENTS_SESSION_SECRET": "session_secret",
         "INVITATIONS_API_KEY_PEPPER": "api_key_pepper", "COMMITMENTS_API_KEY_PEPPER": "api_key_pepper",
         "NOTIFICATIONS_API_KEY_PEPPER": "api_key_pepper",
         "COMMITMENTS_SMTP_USERNAME": "smtp_username", "COMMITMENTS_SMTP_PASSWORD": "smtp_password"}
SERVICE_OF = {"INVITATIONS_RSVP_SECRET": InvitationsSettings, "NOTIFICATIONS_SMTP_USERNAME": NotificationsSettings,
              "NOTIFICATIONS_SMTP_PASSWORD": NotificationsSettings,
              "NOTIFICATIONS_WEBHOOK_SECRET": NotificationsSettings, "DATABASE_URL": CommitmentsSettings,
              "COMMITMENTS_SESSION_SECRET": CommitmentsSettings, "INVITATIONS_API_KEY_PEPPER": InvitationsSettings,
              "COMMITMENTS_API_KEY_PEPPER": CommitmentsSettings, "NOTIFICATIONS_API_KEY_PEPPER": NotificationsSettings,
              "COMMITMENTS_SMTP_USERNAME": CommitmentsSettings, "COMMITMENTS_SMTP_PASSWORD": CommitmentsSettings}
BAD_VALUES = {
    "missing": None,
    "empty": "",
    "the development default": DEV_RSVP_SECRET,
    "the old compose placeholder": "change-me-rsvp-secret-of-at-least-32-characters",
    "a placeholder word": "please-replace-me-with-a-real-secret-value-0123",
    "short": "Ab3$xY9z",
    "one repeated character": "s" * 48,
}


def _kwargs(cls: type, **override: str | None) -> dict[str, str | None]:
    values = {FIELD[k]: v for k, v in GOOD.items() if SERVICE_OF[k] is cls or k == "DATABASE_URL"}
    values.update(override)
    return {"environment": "production", **{k: v for k, v in values.items() if v is not None}}


@pytest.mark.parametrize("cls", [InvitationsSettings, CommitmentsSettings, NotificationsSettings])
def test_good_secrets_start_in_production(cls):
    """Generated secrets pass: the refusals below are about the value, not the mode."""
    assert cls(**_kwargs(cls)).environment == "production"


@pytest.mark.parametrize("variable", [v for v in GOOD if not v.endswith("_SMTP_USERNAME")])
@pytest.mark.parametrize("label", BAD_VALUES)
def test_each_secret_is_refused_when_missing_default_or_weak(variable, label):
    cls, value = SERVICE_OF[variable], BAD_VALUES[label]
    if variable == "DATABASE_URL":
        value = None if value is None else f"postgresql://ntb:{value}@db.internal:5432/ntb".replace("ntb:@", "ntb@")
        if label == "missing":
            value = "postgresql://ntb@db.internal:5432/ntb"  # no password at all
    kwargs = _kwargs(cls, **{FIELD[variable]: value})
    if value is None:
        kwargs.pop(FIELD[variable], None)
    with pytest.raises(ValidationError, match=variable.split(" ")[0]) as refused:
        cls(**kwargs)
    if value:
        assert value not in str(refused.value.errors(include_input=False))
    # The same value is fine in development mode, which the demo and the tests select.
    assert cls(**{**kwargs, "environment": "development"}).environment == "development"


@pytest.mark.parametrize("cls, variable", [(NotificationsSettings, "NOTIFICATIONS_SMTP_USERNAME"),
                                           (CommitmentsSettings, "COMMITMENTS_SMTP_USERNAME")])
def test_production_needs_an_authenticated_smtp_relay(cls, variable):
    """Both services that mail (notices; sign-in links) refuse an unauthenticated relay in production."""
    with pytest.raises(ValidationError, match=variable):
        cls(**_kwargs(cls, smtp_username=None) | {"smtp_username": None})


def test_production_is_the_default_mode(monkeypatch):
    """No NTB_ENV at all means production: nothing falls back to a development value by omission."""
    monkeypatch.delenv("NTB_ENV", raising=False)
    with pytest.raises(ValidationError, match="INVITATIONS_RSVP_SECRET is missing"):
        InvitationsSettings()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(PUBLISHED_SECRETS)), st.text(max_size=20), st.text(max_size=20))
def test_published_values_are_refused_wherever_they_appear(published, before, after):
    """A published value is refused as it is; wrapped in other text it is refused unless long and varied."""
    assert secret_problem(published, min_length=1) is not None
    assert secret_problem(f"{before}change-me{after}", min_length=1) is not None


@pytest.mark.parametrize("cls", [InvitationsSettings, CommitmentsSettings, NotificationsSettings])
def test_the_api_key_pepper_is_read_from_a_file_and_development_has_its_own(cls, tmp_path):
    """<SERVICE>_API_KEY_PEPPER_FILE (a mounted Secret, newline ignored) stands for the variable;
    development mode fills in its built-in pepper, which production refuses as published."""
    variable = cls.model_config["env_prefix"] + "API_KEY_PEPPER"
    pepper = tmp_path / "pepper"
    pepper.write_text(GOOD[variable] + "\n")
    kwargs = _kwargs(cls)
    kwargs.pop("api_key_pepper")
    assert cls(**kwargs, api_key_pepper_file=pepper).api_key_pepper.get_secret_value() == GOOD[variable]
    development = cls(**{**kwargs, "environment": "development"})
    assert development.api_key_pepper.get_secret_value() == DEVELOPMENT_API_KEY_PEPPER
    with pytest.raises(ValidationError, match=f"{variable} is a published default"):
        cls(**kwargs, api_key_pepper=DEVELOPMENT_API_KEY_PEPPER)
    pepper.write_text("short\n")
    with pytest.raises(ValidationError, match=f"{variable} is shorter than 32"):
        cls(**kwargs, api_key_pepper_file=pepper)


REFUSAL = re.compile(r"Value error, (refusing to start in production: INVITATIONS_API_KEY_PEPPER is (missing|a published "
                     r"default or a placeholder|shorter than 32 characters|too few distinct characters to be a "
                     r"generated secret) \(set real secrets, or NTB_ENV=development for a local run\)"
                     r"|INVITATIONS_API_KEY_PEPPER_FILE cannot be read: [A-Za-z]+)")


@settings(max_examples=100, deadline=None)
@given(content=st.one_of(st.binary(max_size=80), st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_pepper_file_is_taken_or_refused_with_a_reason_that_quotes_nothing(content):
    """Hostile pepper files (non-UTF-8, NUL, lone surrogates, line breaks, empty) never crash the start
    with anything but a refusal, and the refusal never shows the file's content."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pepper"
        path.write_bytes(content)
        kwargs = _kwargs(InvitationsSettings)
        kwargs.pop("api_key_pepper")
        try:
            taken = InvitationsSettings(**kwargs, api_key_pepper_file=path)
        except ValidationError as refused:
            # The message is all template: the variable and a fixed reason, nothing of the file.
            for error in refused.errors(include_input=False):
                assert REFUSAL.fullmatch(error["msg"]), error["msg"]
        else:
            value = taken.api_key_pepper.get_secret_value()
            assert value == content.decode("utf-8").rstrip("\r\n")
            assert secret_problem(value, min_length=32) is None
            assert value not in repr(taken) and value not in str(taken.model_dump())


def test_migrate_checks_only_the_database_secret():
    """`migrate` (the migration Job, which holds the database URL alone) starts without the other
    secrets; serving with the same environment is refused."""
    from shared.platform.settings import database_only

    for cls in (InvitationsSettings, CommitmentsSettings, NotificationsSettings):
        # The relay's user name is not a secret: the Job sets it as the Deployment does.
        only_db = {"environment": "production", "database_url": GOOD_DB} | (
            {"smtp_username": "notifikasi"} if cls in (NotificationsSettings, CommitmentsSettings) else {})
        with pytest.raises(ValidationError, match="API_KEY_PEPPER is missing"):
            cls(**only_db)
        with database_only():
            assert cls(**only_db).environment == "production"
            with pytest.raises(ValidationError, match="DATABASE_URL"):
                cls(**only_db | {"database_url": "postgresql://ntb:ntb@db.internal/ntb"})
        with pytest.raises(ValidationError, match="API_KEY_PEPPER is missing"):
            cls(**only_db)  # the context ended with the block


@pytest.mark.parametrize("service, variable", [("invitations", "INVITATIONS_RSVP_SECRET"),
                                               ("notifications", "NOTIFICATIONS_WEBHOOK_SECRET"),
                                               ("notifications", "NOTIFICATIONS_SMTP_PASSWORD"),
                                               ("commitments", "COMMITMENTS_API_KEY_PEPPER"),
                                               ("commitments", "DATABASE_URL"),
                                               ("commitments", "COMMITMENTS_SMTP_PASSWORD")])
def test_the_service_process_refuses_to_start_and_prints_no_secret(service, variable):
    """`python -m services.<name>` exits 2 naming the variable; stderr quotes no secret given to it."""
    env = {k: v for k, v in os.environ.items() if k != "NTB_ENV" and not k.endswith(("_SECRET", "_PASSWORD"))}
    env |= GOOD | {"NTB_ENV": "production"}
    weak = "change-me-" + "9f8e7d6c5b4a" * 3
    env[variable] = f"postgresql://ntb:{weak}@db.internal:5432/ntb" if variable == "DATABASE_URL" else weak
    done = subprocess.run([sys.executable, "-m", f"services.{service}", "openapi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert variable.split(" ")[0] in done.stderr and "refusing to start in production" in done.stderr
    for secret in [*GOOD.values(), weak]:
        assert secret not in done.stderr + done.stdout
