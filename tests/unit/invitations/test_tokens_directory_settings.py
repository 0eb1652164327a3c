"""RSVP tokens, the bundled invitee directory, and settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.invitations import directory, tokens
from services.invitations.settings import DEV_RSVP_SECRET, InvitationsSettings
from shared.contracts.regions import regions

SECRET = b"k" * 32
NOW = datetime(2026, 1, 10, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=5)


def test_token_round_trip_gives_its_invitation():
    """A fresh token verifies to its invitation id and expiry."""
    invitation = uuid.uuid4()
    token = tokens.issue(SECRET, invitation, EXPIRES)
    assert tokens.verify(SECRET, token, NOW) == (invitation, EXPIRES)


def test_token_is_bound_to_its_invitation_and_expiry():
    """Swapping the invitation id or stretching the expiry breaks the signature."""
    token = tokens.issue(SECRET, uuid.uuid4(), EXPIRES)
    _, expires, signature = token.split(".")
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, f"{uuid.uuid4().hex}.{expires}.{signature}", NOW)
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, token.replace(f".{expires}.", f".{int(expires) + 1}."), NOW)


@pytest.mark.parametrize("bad", ["", "a.b", "a.b.c.d", "zz.1.sig", f"{uuid.uuid4().hex}.soon.sig", "x" * 300])
def test_malformed_tokens_are_invalid(bad):
    """Anything not shaped like a token is refused as malformed."""
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(SECRET, bad, NOW)


def test_other_secret_and_expiry_are_refused():
    """A token signed with another key is invalid; a genuine one past its expiry is expired."""
    token = tokens.issue(SECRET, uuid.uuid4(), EXPIRES)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(b"other" * 8, token, NOW)
    with pytest.raises(tokens.ExpiredToken, match="expired"):
        tokens.verify(SECRET, token, EXPIRES)


def test_bundled_directory_fills_every_seat_of_every_region():
    """Ten regions x three seats, official .go.id addresses, no duplicates."""
    entries = directory.bundled()
    assert len(entries) == 30
    assert {(e.region_code, e.role) for e in entries} == {
        (code, role) for code in regions() for role in ("sekda", "kepala_bpkad", "kepala_disnaker")}
    assert all(e.email.endswith(".go.id") for e in entries)


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "'invitees' list"),
    ({"invitees": [{"region_code": "52.99", "role": "sekda", "name": "A", "title": "B", "email": "a@b.go.id"}]},
     "unknown region code"),
    ({"invitees": [{"region_code": "52.01", "role": "bupati", "name": "A", "title": "B", "email": "a@b.go.id"}]},
     "unknown role"),
    ({"invitees": [{"region_code": "5201", "role": "sekda", "name": "A", "title": "B", "email": "a@b.go.id"}] * 2},
     "appears twice"),
])
def test_bad_directory_files_name_the_problem(raw, message):
    """An unknown region or role, or a seat listed twice, is refused with the entry number."""
    with pytest.raises(ValueError, match=message):
        directory.parse(raw)


def test_development_mode_has_the_built_in_rsvp_secret():
    """Only NTB_ENV=development (the tests' mode) falls back to the development secret."""
    assert InvitationsSettings(environment="development").rsvp_secret.get_secret_value() == DEV_RSVP_SECRET


def test_reminder_leads_are_validated():
    """Leads default to three days and one day; malformed or repeated leads are refused."""
    assert InvitationsSettings().reminder_leads == ["P3D", "P1D"]
    assert InvitationsSettings(reminder_leads=["PT2M"]).reminder_leads == ["PT2M"]
    with pytest.raises(ValidationError, match="ISO 8601"):
        InvitationsSettings(reminder_leads=["3 days"])
    with pytest.raises(ValidationError, match="distinct"):
        InvitationsSettings(reminder_leads=["P1D", "P1D"])
