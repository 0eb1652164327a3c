"""Hostile requests to the RSVP page (`/undangan/{token}`): any path, header or body is refused with an
Indonesian HTML page (or answers with the page), never a 5xx, and nothing is written unless the form was
what our page sends with a valid CSRF token. `HOSTILE_EXAMPLES` sets the examples per property."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.invitations.bootstrap import build
from services.invitations.settings import InvitationsSettings
from shared.contracts.roles import Role
from tests.integration.commitments.helpers import FakeClock
from tests.integration.conftest import http_client, issue_key, service_settings
from tests.integration.invitations.conftest import scheduled_and_invited, tokens_by_seat

from .helpers import changed, fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "12"))
FIELDS = ["csrf", "response", "reason", "delegate_name", "delegate_title", "delegate_email", "delegate_phone",
          "admin", "response"]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
                 "multipart/form-data; boundary=x", "application/json", "text/plain", ""]


STRATEGY = dict(
    path=st.one_of(st.just("TOKEN"), st.text(max_size=300), st.binary(max_size=80).map(bytes.hex),
                   st.just("TOKEN-1"), st.just("TOKEN+")),
    body=st.one_of(st.binary(max_size=2000),
                   st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=300)), max_size=10)
                   .map(lambda pairs: "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs))),
    content_type=st.sampled_from(CONTENT_TYPES), with_csrf=st.booleans())


def cases() -> list[tuple]:
    """Drawn first, sent after: the client and the database live on the test's event loop."""
    drawn: list[tuple] = []

    @settings(max_examples=EXAMPLES * 4, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(**STRATEGY)
    def draw(path, body, content_type, with_csrf):
        drawn.append((path, body, content_type, with_csrf))

    draw()
    return drawn


async def test_hostile_requests_to_the_rsvp_page(topic_prefix, schema_for, db):
    schema = schema_for("inv")
    clock = FakeClock()
    rt, app = build(service_settings(InvitationsSettings, topic_prefix, schema, timer_poll_seconds=0.05), clock=clock)
    await rt.start()
    seen: set[int] = set()
    try:
        async with http_client(app, rt) as client:
            auth = {"Authorization": f"Bearer {await issue_key(rt, Role.ORGANIZER)}"}
            await scheduled_and_invited(client, auth, clock.now + timedelta(days=5))
            seats = await tokens_by_seat(db, schema, topic_prefix)
            _, token = seats[("52.01", "sekda")]
            csrf = re.search(r'name="csrf" value="([^"]+)"', (await client.get(f"/undangan/{token}")).text).group(1)
            spelled = {"TOKEN": token, "TOKEN-1": token[:-1] + ("A" if token[-1] != "A" else "B"),
                       "TOKEN+": token + "." + "9" * 20}
            for path, body, content_type, with_csrf in cases():
                path = spelled.get(path, path)
                if isinstance(body, str):
                    body = (f"csrf={csrf}&" + body if with_csrf else body).encode()
                before = await fingerprint(db, schema)
                headers = {"content-type": content_type} if content_type else {}
                r = await client.post(f"/undangan/{quote(path, safe='')}", content=body, headers=headers)
                seen.add(r.status_code)
                assert r.status_code < 500, (r.status_code, r.text[:300])
                if r.status_code == 303:  # a valid answer from our own form: applied through the command
                    assert r.headers["location"] == f"/undangan/{token}?tersimpan=1"
                    continue
                if r.headers.get("content-type", "").startswith("text/html"):
                    assert "Pemerintah Provinsi Nusa Tenggara Barat" in r.text
                else:  # refused by the strict layer before the page (e.g. a path too long): JSON reason
                    assert r.status_code in (404, 413, 414, 422), (r.status_code, r.text[:200])
                assert changed(before, await fingerprint(db, schema)) == []
            assert {400, 403} <= seen, seen
            r = await client.get(f"/undangan/{token}")
            assert r.status_code == 200 and "Konfirmasi Kehadiran" in r.text
    finally:
        await rt.stop()
    print(f"\n[rsvp page] {len(cases())} hostile requests, statuses {sorted(seen)}")
