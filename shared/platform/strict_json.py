"""Strict, bounded JSON: the one parser behind every edge that takes JSON from outside.

Kafka record values (shared.platform.envelope) and HTTP bodies (shared.platform.http) are read by the same code,
each edge with its own `Limits`. Whatever is accepted can be written back as strict JSON:
  * UTF-8 only, no byte order mark;
  * no NaN / Infinity literals, and no number that overflows to infinity (`1e999`);
  * integers of at most `max_int_digits` digits (int("9" * 5000) alone costs milliseconds);
  * no key twice in one object (which value would the sender mean?);
  * at most `max_bytes`, nested at most `max_depth` levels, at most `max_items` values;
  * optionally, no string (key or value) matching `forbidden_text`. HTTP forbids control
    characters and lone surrogates here; the Kafka edge leaves NUL and lone surrogates to the
    payload contract (shared.contracts.registry), whose refusal names the field.
A refusal is a `JsonRefused` whose message says why without quoting the input at length.

Dependency-free (standard library only), so contracts and the platform can both use it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any


class JsonRefused(ValueError):
    """The bytes are not JSON this system accepts; the message says why."""


# Control characters other than tab and line breaks, C1 controls, lone surrogates, non-characters.
CONTROL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number this system accepts")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("a number is out of range (not finite)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # the rare case: find the first key seen before
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefused(f"key {printable(key, 60)!r} appears twice in one object")
            seen.add(key)
    return result


def printable(text: str, limit: int) -> str:
    """Text safe to put in a reason, an answer or a log: no surrogates or controls, bounded."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    safe = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in safe)
    return safe if len(safe) <= limit else safe[:limit] + "..."


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_depth: int = 32
    max_items: int = 10_000
    max_int_digits: int = 30
    forbidden_text: re.Pattern[str] | None = None
    # Built once per edge: json.loads with hooks would build a decoder per call.
    decoder: json.JSONDecoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digits = self.max_int_digits

        def bounded_int(text: str) -> int:
            if len(text) - text.startswith("-") > digits:
                raise JsonRefused(f"an integer has more than {digits} digits")
            return int(text)

        decoder = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys,
                                   parse_float=_finite, parse_int=bounded_int)
        object.__setattr__(self, "decoder", decoder)


def loads(raw: bytes, limits: Limits, *, what: str = "value") -> Any:
    """The parsed value, or `JsonRefused` naming `what` and the reason."""
    if len(raw) > limits.max_bytes:
        raise JsonRefused(f"{what} is {len(raw):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"{what} is not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise JsonRefused(f"{what} starts with a byte order mark")
    try:
        # The size is bounded above, and the C parser guards its recursion (RecursionError at
        # about 1,000 levels, caught here), so parsing first is safe; the shape is checked after.
        parsed = limits.decoder.decode(text)
    except JsonRefused as exc:
        raise JsonRefused(f"{what}: {exc}") from None
    except RecursionError:
        raise JsonRefused(f"{what} is nested deeper than {limits.max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # int() refusing a literal, and the like
        raise JsonRefused(f"{what} is not valid JSON: {printable(str(exc), 120)}") from None
    if limits.forbidden_text is not None or not _within_shape(raw, limits):
        check_shape(parsed, limits, what=what)
    return parsed


def _within_shape(raw: bytes, limits: Limits) -> bool:
    """True when the bytes alone prove the JSON is within the depth and item bounds (the usual case)."""
    opens = raw.count(b"[") + raw.count(b"{")
    return opens <= limits.max_depth and opens + raw.count(b",") < limits.max_items


def check_shape(parsed: Any, limits: Limits, *, what: str = "value") -> None:
    """Refuse nesting deeper than the limit, too many values, or forbidden text (iteratively)."""
    forbidden = limits.forbidden_text
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    items = 0
    while stack:
        node, depth = stack.pop()
        items += 1
        if items > limits.max_items:
            raise JsonRefused(f"{what} holds more than {limits.max_items:,} JSON values")
        if isinstance(node, str):
            if forbidden is not None and forbidden.search(node):
                raise JsonRefused(f"{what}: a string contains a control character (such as NUL), "
                                  "a lone surrogate or a non-character")
            continue
        if isinstance(node, dict):
            if forbidden is not None:
                stack.extend((key, depth) for key in node)
                items -= len(node)  # a member is one value; its key is checked, not counted
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limits.max_depth:
            raise JsonRefused(f"{what} is nested deeper than {limits.max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
