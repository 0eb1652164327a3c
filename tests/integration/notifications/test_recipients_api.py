"""The recipient directory over HTTP: operators only; mandatory notices cannot be muted."""

from __future__ import annotations

import pytest

from services.notifications.bootstrap import build
from shared.contracts.roles import Role

from ..conftest import http_client, issue_key
from .conftest import notif_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]


async def test_directory_crud_and_mute_rules(topic_prefix, schema_for, db):
    """Seeded from data, created/updated by an operator, refused to others; muting a deadline is refused."""
    schema = schema_for("not")
    rt, app = build(notif_settings(topic_prefix, schema, 2525))
    await rt.start()
    try:
        operator = {"Authorization": f"Bearer {await issue_key(rt, Role.OPERATOR)}"}
        reviewer = {"Authorization": f"Bearer {await issue_key(rt, Role.BPJS_REVIEWER)}"}
        async with http_client(app, rt) as client:
            sekdas = (await client.get("/recipients", params={"role": "sekda"}, headers=operator)).json()
            assert len(sekdas) == 10 and {s["region_code"] for s in sekdas} >= {"52.01", "52.72"}
            assert (await client.get("/recipients", headers=reviewer)).status_code == 403
            new = {"recipient_id": "bpjs-ntb-3", "name": "Staf Kepesertaan", "role": "bpjs_staff",
                   "email": "staf3@bpjsketenagakerjaan.go.id", "webhook_url": "https://wa.example.go.id/hook",
                   "channels": ["webhook", "email"], "muted": ["ntb.commitments.commitment.submitted.v1"]}
            r = await client.post("/recipients", json=new, headers=operator)
            assert r.status_code == 201, r.text
            assert r.json()["channels"] == ["webhook", "email"]
            assert (await client.post("/recipients", json=new, headers=operator)).status_code == 409
            assert (await client.post("/recipients", json=new, headers=reviewer)).status_code == 403
            bad = new | {"recipient_id": "x1", "email": "bukan alamat"}
            assert (await client.post("/recipients", json=bad, headers=operator)).status_code == 422
            update = {k: v for k, v in new.items() if k != "recipient_id"} | {
                "muted": ["ntb.commitments.commitment.overdue.v1"]}
            r = await client.put("/recipients/bpjs-ntb-3", json=update, headers=operator)
            assert r.status_code == 422 and "mandatory" in r.json()["detail"]
            r = await client.put("/recipients/bpjs-ntb-3", json=update | {"muted": [], "active": False},
                                 headers=operator)
            assert r.status_code == 200 and r.json()["active"] is False
            assert (await client.put("/recipients/nobody", json=update | {"muted": []},
                                     headers=operator)).status_code == 404
        # A restart re-seeds only missing ids: an operator's edit survives.
        await db.execute(f"""UPDATE "{schema}".recipients SET email = 'baru@dompukab.go.id' WHERE recipient_id = 'sekda-5205'""")
    finally:
        await rt.stop()
    rt, _ = build(notif_settings(topic_prefix, schema, 2525))
    await rt.start()
    try:
        assert await db.fetchval(f"""SELECT email FROM "{schema}".recipients WHERE recipient_id = 'sekda-5205'""") \
            == "baru@dompukab.go.id"
    finally:
        await rt.stop()
