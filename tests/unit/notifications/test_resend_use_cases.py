"""The resend use cases against a fake unit of work: what is resent, what is refused and why, who is audited."""

import uuid

import pytest

from services.notifications import resend
from shared.contracts.roles import Role
from shared.platform.errors import Conflict, NotFound
from shared.platform.unit_of_work import Actor

from ..fakes import fake_unit_of_work

OPERATOR = Actor("key-op", Role.OPERATOR)


def candidate(status: str, *, rendered: bool = True, address: str = "lama@dompukab.go.id",
              current: str | None = "baru@dompukab.go.id") -> dict:
    return {"delivery_id": uuid.uuid4(), "status": status, "attempts": 3, "reason": "gave up", "address": address,
            "channel": "email", "rendered": rendered, "current_address": current}


class Deliveries:
    """The store's resend statements over a list of candidate rows."""

    def __init__(self, *rows: dict) -> None:
        self.rows = list(rows)
        self.resent: list[tuple[uuid.UUID, str, str, str]] = []

    async def resend_candidates(self, *, delivery_id=None, event_id=None):
        return [r for r in self.rows if delivery_id is None or r["delivery_id"] == delivery_id]

    async def resend(self, chosen, *, actor, role):
        self.resent += [(row["delivery_id"], address, actor, role) for row, address in chosen]
        return {row["delivery_id"] for row, _ in chosen if row["status"] == "failed"}


async def test_a_failed_delivery_goes_out_again_to_the_directory_address_audited_as_the_operator():
    row = candidate("failed")
    store = Deliveries(row)
    uow, outbox = fake_unit_of_work(store, actor=OPERATOR)
    result = await resend.resend_one(uow, row["delivery_id"])
    assert result.resent == [row["delivery_id"]]
    assert store.resent == [(row["delivery_id"], "baru@dompukab.go.id", "key-op", "operator")]
    assert outbox.payloads() == []


async def test_an_unusable_directory_address_keeps_the_one_the_delivery_had():
    row = candidate("failed", current="bukan alamat")
    store = Deliveries(row)
    uow, _ = fake_unit_of_work(store, actor=OPERATOR)
    await resend.resend_one(uow, row["delivery_id"])
    assert store.resent[0][1] == "lama@dompukab.go.id"


@pytest.mark.parametrize("status, rendered, why", [
    ("sent", True, "already sent"), ("pending", True, "still pending"), ("failed", False, "before anything was rendered")])
async def test_what_cannot_be_resent_is_a_conflict_saying_why(status, rendered, why):
    row = candidate(status, rendered=rendered)
    store = Deliveries(row)
    uow, _ = fake_unit_of_work(store, actor=OPERATOR)
    with pytest.raises(Conflict) as refused:
        await resend.resend_one(uow, row["delivery_id"])
    assert why in refused.value.message and str(row["delivery_id"]) in refused.value.message
    assert store.resent == []


async def test_no_delivery_is_not_found():
    uow, _ = fake_unit_of_work(Deliveries(), actor=OPERATOR)
    with pytest.raises(NotFound, match="no delivery"):
        await resend.resend_one(uow, uuid.uuid4())
    with pytest.raises(NotFound, match="the event has no deliveries"):
        await resend.resend_event(uow, "e1")


async def test_an_event_resends_its_failed_deliveries_and_reports_only_failed_ones_it_cannot():
    ok, never_rendered, sent = candidate("failed"), candidate("failed", rendered=False), candidate("sent")
    uow, _ = fake_unit_of_work(Deliveries(ok, never_rendered, sent), actor=OPERATOR)
    result = await resend.resend_event(uow, "e1")
    assert result.resent == [ok["delivery_id"]]
    assert [r.delivery_id for r in result.refused] == [never_rendered["delivery_id"]]


async def test_an_event_with_nothing_to_resend_is_a_conflict():
    uow, _ = fake_unit_of_work(Deliveries(candidate("sent")), actor=OPERATOR)
    with pytest.raises(Conflict, match="no delivery of the event resent: none failed"):
        await resend.resend_event(uow, "e1")
