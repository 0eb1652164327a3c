"""A unit of work without PostgreSQL or Kafka, for use cases' unit tests.

The use case gets a `UnitOfWork` whose `store` is an in-memory stand-in the test provides and
whose outbox keeps the emitted payloads in a list. SQL stays behind the real store, which the
integration tests run on a real PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.contracts.registry import EventPayload, registry
from shared.platform.envelope import CloudEvent
from shared.platform.unit_of_work import SYSTEM, Actor, UnitOfWork

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass
class RecordingOutbox:
    """Keeps what `emit` wrote: (payload, the CloudEvent it became, correlation id, causation id)."""

    emitted: list[tuple[EventPayload, CloudEvent]] = field(default_factory=list)

    async def add(self, conn: Any, payload: EventPayload, *, correlation_id: str | None = None,
                  causation_id: str | None = None) -> CloudEvent:
        spec = registry.spec_for(payload)
        event = CloudEvent.new(source="/ntb/test", type=spec.type, data=payload.model_dump_json().encode(),
                               correlation_id=correlation_id, causation_id=causation_id)
        self.emitted.append((payload, event))
        return event

    def payloads(self) -> list[EventPayload]:
        return [payload for payload, _ in self.emitted]


def fake_unit_of_work(store: Any = None, *, actor: Actor = SYSTEM, now: datetime = NOW,
                      correlation_id: str | None = "corr-1", causation_id: str | None = "cause-1",
                      ) -> tuple[UnitOfWork[Any], RecordingOutbox]:
    outbox = RecordingOutbox()
    uow: UnitOfWork[Any] = UnitOfWork(conn=None, outbox=outbox, now=now, actor=actor,  # type: ignore[arg-type]
                                      store=store, correlation_id=correlation_id, causation_id=causation_id)
    return uow, outbox
