"""Versioned event types: what each type's payload looks like and where it travels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """Base of every event payload: immutable, and tolerant of fields added later.

    Unknown fields are ignored rather than rejected so a producer can add an optional
    field without breaking older consumers (backward-compatible evolution); a breaking
    change gets a new `.vN` type instead.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


P = TypeVar("P", bound=EventPayload)


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str
    model: type[EventPayload]
    topic: str
    key: Callable[[Any], str]
    subject: Callable[[Any], str | None]

    def key_of(self, payload: EventPayload) -> str:
        return self.key(payload)


class UnknownEventType(KeyError):
    pass


class EventRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, EventSpec] = {}
        self._by_model: dict[type[EventPayload], EventSpec] = {}

    def event(
        self,
        type: str,
        *,
        topic: str,
        key: Callable[[Any], str],
        subject: Callable[[Any], str | None] | None = None,
    ) -> Callable[[type[P]], type[P]]:
        """Class decorator registering a payload model under a versioned type name."""
        if not type.rsplit(".", 1)[-1].startswith("v"):
            raise ValueError(f"event type {type!r} must end with a version such as .v1")

        def register(model: type[P]) -> type[P]:
            if type in self._specs:
                raise ValueError(f"event type {type!r} registered twice")
            spec = EventSpec(type, model, topic, key, subject or key)
            self._specs[type] = spec
            self._by_model[model] = spec
            model.event_type = type  # type: ignore[attr-defined]
            return model

        return register

    def spec(self, type: str) -> EventSpec:
        try:
            return self._specs[type]
        except KeyError:
            raise UnknownEventType(type) from None

    def spec_for(self, payload: EventPayload | type[EventPayload]) -> EventSpec:
        model = payload if isinstance(payload, type) else type(payload)
        return self._by_model[model]

    def __contains__(self, type: str) -> bool:
        return type in self._specs

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self._specs.values())


registry = EventRegistry()
