"""Requests the fuzzer found answering 500: each now gets a 422 and writes nothing."""

from __future__ import annotations

import pytest

from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from shared.contracts.roles import Role
from tests.integration.conftest import http_client, issue_key, service_settings
from tests.integration.notifications.conftest import notif_settings

from .helpers import changed, fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_nul_text_and_out_of_range_dates_get_422_not_500(topic_prefix, schema_for, db):
    """NUL in stored text, a date whose offset leaves the calendar, NUL in a query: 422, no table changes."""
    inv_schema, not_schema = schema_for("inv"), schema_for("not")
    inv, inv_app = build_invitations(service_settings(InvitationsSettings, topic_prefix, inv_schema))
    notif, not_app = build_notifications(notif_settings(topic_prefix, not_schema, 2525))
    await inv.start()
    await notif.start()
    try:
        organizer = {"Authorization": f"Bearer {await issue_key(inv, Role.ORGANIZER)}"}
        operator = {"Authorization": f"Bearer {await issue_key(notif, Role.OPERATOR)}"}
        async with http_client(inv_app, inv) as client:
            before = await fingerprint(db, inv_schema)
            r = await client.put("/directory/52.03/sekda", headers=organizer, json={
                "name": "Nama\x00", "title": "Sekda", "email": "sekda@sumbawakab.go.id"})
            assert r.status_code == 422 and "NUL" in r.text, r.text
            r = await client.post("/meetings", headers=organizer, json={
                "title": "0", "organizer": "0", "starts_at": "2000-01-01T00:00:00Z",
                "ends_at": "0001-01-01T00:00:00+00:01"})
            assert r.status_code == 422, r.text
            assert changed(before, await fingerprint(db, inv_schema)) == []
        async with http_client(not_app, notif) as client:
            r = await client.get("/deliveries", params={"event_id": "a\x00b"}, headers=operator)
            assert r.status_code == 422, r.text
    finally:
        await inv.stop()
        await notif.stop()
