"""The unit of work and the one error family: what every entrypoint hands a use case, how refusals answer."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Request

from shared.contracts.commitments import CommitmentStatus, DeadlineApproaching
from shared.contracts.roles import Role
from shared.platform import errors, tracecontext
from shared.platform.auth import Principal
from shared.platform.http import create_app
from shared.platform.unit_of_work import Actor, request_causation
from tests.unit.fakes import fake_unit_of_work


async def test_emit_correlates_with_what_started_the_work() -> None:
    uow, outbox = fake_unit_of_work(correlation_id="flow-7", causation_id="event-3")
    event = await uow.emit(DeadlineApproaching(
        commitment_id="00000000-0000-4000-8000-000000000001", region_code="52.01", fiscal_year=2026,
        deadline="2026-03-31T23:59:00+08:00", status=CommitmentStatus.REQUESTED))
    assert event.correlation_id == "flow-7" and event.causation_id == "event-3"
    assert [type(p) for p in outbox.payloads()] == [DeadlineApproaching]


async def test_acting_as_changes_only_the_actor() -> None:
    uow, _ = fake_unit_of_work(store="the store")
    other = uow.acting_as(Actor("/ntb/regions/52.01", Role.REGION_OPERATOR, "52.01"))
    assert other.actor.region_code == "52.01" and other.actor.label == "/ntb/regions/52.01 (region_operator)"
    assert (other.store, other.now, other.scope, other.causation_id) == (uow.store, uow.now, uow.scope, uow.causation_id)


def test_an_actor_from_a_principal_keeps_its_region() -> None:
    actor = Actor.of(Principal("k1", "Operator Lotim", Role.REGION_OPERATOR, "52.03"))
    assert (actor.id, actor.role, actor.region_code) == ("k1", Role.REGION_OPERATOR, "52.03")


def test_an_http_request_is_the_cause_of_what_it_emits() -> None:
    assert request_causation() == (None, None)
    parent = tracecontext.TraceParent.new()
    with tracecontext.use(tracecontext.Trace(parent, correlation_id="req-1")):
        assert request_causation() == ("req-1", f"request:{parent.span_id}")


@pytest.mark.parametrize(("error", "status"), [
    (errors.Invalid, 422), (errors.NotFound, 404), (errors.Conflict, 409), (errors.StaleVersion, 412),
    (errors.Gone, 410), (errors.Forbidden, 403)])
async def test_each_refusal_has_one_http_answer(error: type[errors.DomainError], status: int) -> None:
    app = create_app("t", "t")

    @app.post("/x")
    async def refuse() -> None:
        raise error("cannot do that now", current_status="verified")

    @app.post("/y")
    async def refuse_plainly(request: Request) -> None:
        raise error("no such thing")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        with_state = await client.post("/x")
        plain = await client.post("/y")
    assert with_state.status_code == status == plain.status_code
    assert with_state.json() == {"detail": {"message": "cannot do that now", "current_status": "verified"}}
    assert plain.json() == {"detail": "no such thing"}
