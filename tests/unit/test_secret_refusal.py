"""Production (the default mode) refuses every missing, default, placeholder or weak secret.

Each secret is tested alone: all the others are good, so the refusal is the one under test.
The message names the variable and never quotes a value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from services.commitments.settings import CommitmentsSettings
from services.invitations.settings import DEV_RSVP_SECRET, InvitationsSettings
from services.notifications.settings import NotificationsSettings
from shared.settings import PUBLISHED_SECRETS, secret_problem

ROOT = Path(__file__).resolve().parents[2]
GOOD_DB = "postgresql://ntb:Qm3v9TzR2kLp8WxY@db.internal:5432/ntb"
GOOD = {
    "INVITATIONS_RSVP_SECRET": "h7Kq2mZp9Xr4Tv8Ns1Lw6Jb3Yc5Df0Ga",
    "NOTIFICATIONS_SMTP_USERNAME": "notifikasi",
    "NOTIFICATIONS_SMTP_PASSWORD": "Wf4Rk8Tz2Hq6Np",
    "NOTIFICATIONS_WEBHOOK_SECRET": "Zx9Cv2Bn7Mq4Lk8Jh3Gf6Ds1Ap5Ow0Ie",
    "DATABASE_URL": GOOD_DB,
    "COMMITMENTS_SESSION_SECRET": "Pd4Hs8Kw2Nx6Qb9Tm3Vr7Yc1Lf5Zg0Je",
    "COMMITMENTS_SMTP_USERNAME": "rakor-masuk",
    "COMMITMENTS_SMTP_PASSWORD": "Gk7Wp3Xn9Rt5Bm",
}
FIELD = {"INVITATIONS_RSVP_SECRET": "rsvp_secret", "NOTIFICATIONS_SMTP_USERNAME": "smtp_username",
         "NOTIFICATIONS_SMTP_PASSWORD": "smtp_password", "NOTIFICATIONS_WEBHOOK_SECRET": "webhook_secret",
         "DATABASE_URL": "database_url", "COMMITMENTS_SESSION_SECRET": "session_secret",
         "COMMITMENTS_SMTP_USERNAME": "smtp_username", "COMMITMENTS_SMTP_PASSWORD": "smtp_password"}
SERVICE_OF = {"INVITATIONS_RSVP_SECRET": InvitationsSettings, "NOTIFICATIONS_SMTP_USERNAME": NotificationsSettings,
              "NOTIFICATIONS_SMTP_PASSWORD": NotificationsSettings,
              "NOTIFICATIONS_WEBHOOK_SECRET": NotificationsSettings, "DATABASE_URL": CommitmentsSettings,
              "COMMITMENTS_SESSION_SECRET": CommitmentsSettings, "COMMITMENTS_SMTP_USERNAME": CommitmentsSettings,
              "COMMITMENTS_SMTP_PASSWORD": CommitmentsSettings}
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


@pytest.mark.parametrize("service, variable", [("invitations", "INVITATIONS_RSVP_SECRET"),
                                               ("notifications", "NOTIFICATIONS_WEBHOOK_SECRET"),
                                               ("notifications", "NOTIFICATIONS_SMTP_PASSWORD"),
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
