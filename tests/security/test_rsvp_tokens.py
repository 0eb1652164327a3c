"""RSVP tokens cannot be forged, moved to another invitation, stretched, or used after expiry."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import pytest

from services.invitations import tokens
from services.invitations.bootstrap import build
from services.invitations.settings import InvitationsSettings
from shared.contracts.roles import Role
from tests.integration.commitments.helpers import FakeClock
from tests.integration.conftest import http_client, issue_key, service_settings
from tests.integration.invitations.conftest import scheduled_and_invited, tokens_by_seat

from .helpers import changed, fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

SECRET = "rahasia-rsvp-uji-keamanan-" + "x" * 16


async def test_forged_swapped_resigned_and_expired_tokens_are_refused_and_write_nothing(topic_prefix, schema_for, db):
    """Every token attack gets 403 (or 410 for a genuine expired one) on GET and POST; no table changes."""
    schema = schema_for("inv")
    clock = FakeClock()
    rt, app = build(service_settings(InvitationsSettings, topic_prefix, schema, rsvp_secret=SECRET), clock=clock)
    await rt.start()
    try:
        auth = {"Authorization": f"Bearer {await issue_key(rt, Role.ORGANIZER)}"}
        start = clock.now + timedelta(days=7)
        async with http_client(app, rt) as client:
            await scheduled_and_invited(client, auth, start)
            seats = await tokens_by_seat(db, schema, topic_prefix)
            id_a, token_a = seats[("52.01", "sekda")]
            id_b, token_b = seats[("52.02", "kepala_disnaker")]
            a_hex, expiry, signature = token_a.split(".")
            b_hex = uuid.UUID(id_b).hex
            key = SECRET.encode()
            attacks = {
                "random": secrets.token_urlsafe(48),
                "random, token-shaped": f"{uuid.uuid4().hex}.{expiry}.{secrets.token_urlsafe(32)}",
                "A's signature on B's id": f"{b_hex}.{expiry}.{signature}",
                "B's id re-signed with another secret": tokens.issue(b"another-secret", uuid.UUID(id_b), start),
                "A re-signed with another secret": tokens.issue(b"another-secret", uuid.UUID(id_a), start),
                "A's expiry stretched": f"{a_hex}.{int(expiry) + 7 * 86400}.{signature}",
                "A's expiry shortened": f"{a_hex}.{int(expiry) - 60}.{signature}",
                "A's signature truncated": f"{a_hex}.{expiry}.{signature[:-1]}",
                "A's signature empty": f"{a_hex}.{expiry}.",
                "A's signature of B, on A": f"{a_hex}.{expiry}.{token_b.split('.')[2]}",
                "extra part": f"{token_a}.x",
                "upper-cased id": f"{a_hex.upper()}.{expiry}.{signature}",
                "dashed id": f"{uuid.UUID(a_hex)}.{expiry}.{signature}",
                "expiry with leading zero": f"{a_hex}.0{expiry}.{signature}",
                "expiry with plus sign": f"{a_hex}.+{expiry}.{signature}",
                "negative expiry": f"{a_hex}.-1.{signature}",
                "huge expiry": f"{a_hex}.{10**30}.{signature}",
                "too long": token_a + "A" * 200,
                "unknown invitation, genuine signature": tokens.issue(key, uuid.uuid4(), start),
            }
            before = await fingerprint(db, schema)
            outcomes = {}
            for name, bad in attacks.items():
                r = await client.post(f"/rsvp/{bad}", json={"response": "accepted"})
                shown = await client.get(f"/rsvp/{bad}")
                outcomes[name] = (r.status_code, shown.status_code)
                # A genuine signature on an id that does not exist needs the secret: 404, still nothing written.
                # A token over the length limit is refused by the path validation (422) before any check.
                expected = {"unknown invitation, genuine signature": 404, "too long": 422}.get(name, 403)
                assert (r.status_code, shown.status_code) == (expected, expected), (name, r.text)
            # A genuine token whose expiry has passed: built with the service's own token module.
            expired = tokens.issue(key, uuid.UUID(id_a), clock.now - timedelta(seconds=1))
            r = await client.post(f"/rsvp/{expired}", json={"response": "accepted"})
            assert r.status_code == 410 and "expired" in r.json()["detail"]
            outcomes["expired, genuine"] = (r.status_code, (await client.get(f"/rsvp/{expired}")).status_code)
            assert changed(before, await fingerprint(db, schema)) == []

            # A's real token still works, and only for A: the answer lands on A, B stays unanswered.
            r = await client.post(f"/rsvp/{token_a}", json={"response": "accepted"})
            assert r.status_code == 200 and r.json()["invitation_id"] == id_a
            answered = {str(row["invitation_id"]) for row in await db.fetch(
                f'SELECT invitation_id FROM "{schema}".invitations WHERE response IS NOT NULL')}
            assert answered == {id_a}
            # ... and after the meeting starts, the same genuine link is refused.
            clock.now = start + timedelta(seconds=1)
            before = await fingerprint(db, schema, skip=["timers"])
            r = await client.post(f"/rsvp/{token_a}", json={"response": "declined", "reason": "Berhalangan"})
            assert r.status_code == 410
            assert changed(before, await fingerprint(db, schema, skip=["timers"])) == []
    finally:
        await rt.stop()
    print(f"\n[rsvp] {len(outcomes)} token attacks (GET and POST each): {outcomes}")
