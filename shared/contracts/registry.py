"""Versioned event types: what each type's payload looks like and where it travels."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator


def _storable(value: Any) -> bool:
    """True when no text in `value` holds NUL or a lone surrogate: the walk every payload gets, so it
    names no place (`unstorable_text` does, once this finds there is one) and checks text inline."""
    if isinstance(value, str):
        return _text_storable(value)
    if isinstance(value, dict):
        for key in value:
            if not (_text_storable(key) if isinstance(key, str) else _storable(key)):
                return False
        items: Any = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return True
    for item in items:
        if isinstance(item, str):
            if not _text_storable(item):
                return False
        elif isinstance(item, (dict, list, tuple)) and not _storable(item):
            return False
    return True


def _text_storable(text: str) -> bool:
    # isascii() reads a flag CPython keeps on the string: only non-ASCII text is encoded.
    return "\x00" not in text and (text.isascii() or encodes_as_utf8(text))


def encodes_as_utf8(text: str) -> bool:
    """False for text holding a lone surrogate (which no UTF-8 column, header or file can take)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_text(value: Any, path: str = "") -> str | None:
    """Where `value` holds text PostgreSQL cannot store (NUL, a lone surrogate), or None.

    Walks everything sent, known fields and ignored ones alike (the nesting is already
    bounded by shared.platform.envelope's parser).
    """
    if not path and _storable(value):  # the usual case, checked without naming every place
        return None
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'payload'}: text contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'payload'}: text contains a lone surrogate (not UTF-8)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            # A lone surrogate in a field name is shown escaped: the reason itself must be valid text.
            name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
            where = f"{path}.{name}" if path else name
            found = unstorable_text(key, where + " (field name)") or unstorable_text(item, where)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = unstorable_text(item, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None


class EventPayload(BaseModel):
    """Base of every event payload: immutable, and tolerant of fields added later.

    Unknown fields are ignored rather than rejected so a producer can add an optional
    field without breaking older consumers (backward-compatible evolution); a breaking
    change gets a new `.vN` type instead. No string anywhere in it may hold NUL or a lone
    surrogate: PostgreSQL refuses both, and the refusal belongs at the edge, with the field.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)
    event_type: ClassVar[str]  # set on each registered model by EventRegistry.event

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is TEXT_CHECKED:  # the caller proved it for the whole input (and so every nested model)
            return data
        found = unstorable_text(data)
        if found:
            raise ValueError(found)
        return data


# `model_validate(data, context=TEXT_CHECKED)`: the caller has shown that no text in `data` holds NUL
# or a lone surrogate (e.g. JSON parsed strictly from UTF-8 bytes without a single \u escape: only an
# escape can spell either), so no model in it walks the text again.
TEXT_CHECKED: dict[str, Any] = {"text_checked": True}


P = TypeVar("P", bound=EventPayload)


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str
    model: builtins.type[EventPayload]
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
    ) -> Callable[[builtins.type[P]], builtins.type[P]]:
        """Class decorator registering a payload model under a versioned type name."""
        if not type.rsplit(".", 1)[-1].startswith("v"):
            raise ValueError(f"event type {type!r} must end with a version such as .v1")

        def register(model: builtins.type[P]) -> builtins.type[P]:
            if type in self._specs:
                raise ValueError(f"event type {type!r} registered twice")
            spec = EventSpec(type, model, topic, key, subject or key)
            self._specs[type] = spec
            self._by_model[model] = spec
            model.event_type = type
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

    def types_on(self, topic: str) -> list[str]:
        """The event types documented for a (logical) topic: exactly what a consumer of it accepts."""
        from shared.contracts.topics import contract_of  # topic names only; imported here to keep the registry generic

        topic = contract_of(topic)
        return sorted(spec.type for spec in self._specs.values() if spec.topic == topic)


registry = EventRegistry()
