"""CloudEvents 1.0 over Kafka.

Out: binary mode only (ce_* headers, `content-type: application/json`, the data as the
record value). In: binary mode and structured mode (`application/cloudevents+json`).
Decoding never trusts the producer: every failure is an `EnvelopeError` with a reason
that ends up in the dead letter.

Headers arrive as the raw bytes the broker holds (shared.platform.kafka_records). The headers this
project reads (`ce_*` and `content-type`, any letter case) must each be sent once, be
UTF-8 without control characters, and be at most `HEADER_MAX` characters; other headers
are not read, only carried along into a dead letter. A header name that is not UTF-8 is
refused whatever it is, since nobody can tell whether it was meant to be read.

Values are parsed with bounds (`VALUE_MAX_BYTES`, `DEPTH_MAX`, `ITEMS_MAX`), as strict
UTF-8 JSON by shared.platform.strict_json: no NaN/Infinity/1e999, no key sent twice in one object.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.contracts.registry import encodes_as_utf8
from shared.platform import strict_json
from shared.platform.tracecontext import parse_traceparent

SPECVERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
# Tracing extensions. CloudEvents extension names are lowercase alphanumerics only.
CORRELATION = "correlationid"
CAUSATION = "causationid"
# CloudEvents distributed-tracing extension: the W3C traceparent of the producing span.
TRACEPARENT = "traceparent"
REQUIRED = ("id", "source", "type", "specversion")

Headers = Sequence[tuple[str, bytes | None]]

# Limits on what the project reads from a record (docs/integration.md, "Limits").
HEADER_MAX = 256            # characters in one ce_* / content-type header value
ID_MAX = 200                # characters in ce_id and ce_source: they key the inbox's btree index
VALUE_MAX_BYTES = 256 * 1024
DEPTH_MAX = 32              # nesting of JSON arrays and objects
ITEMS_MAX = 10_000          # JSON values in one record (arrays' items and objects' members)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class EnvelopeError(ValueError):
    """The record is not a CloudEvent this system can read."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    source: str
    type: str
    data: bytes
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = JSON
    traceparent: str | None = None

    @classmethod
    def new(
        cls,
        *,
        source: str,
        type: str,
        data: bytes,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        traceparent: str | None = None,
    ) -> CloudEvent:
        event_id = id or str(uuid.uuid4())
        return cls(
            id=event_id,
            source=source,
            type=type,
            data=data,
            time=time or datetime.now(UTC),
            subject=subject,
            # A chain starts with its first event: that event's id correlates the rest.
            correlation_id=correlation_id or event_id,
            causation_id=causation_id,
            traceparent=traceparent,
        )

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Binary-mode Kafka headers."""
        pairs = [
            ("ce_specversion", self.specversion),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat()),
            ("content-type", self.datacontenttype),
        ]
        if self.subject is not None:
            pairs.append(("ce_subject", self.subject))
        if self.correlation_id is not None:
            pairs.append((f"ce_{CORRELATION}", self.correlation_id))
        if self.causation_id is not None:
            pairs.append((f"ce_{CAUSATION}", self.causation_id))
        if self.traceparent is not None:
            pairs.append((f"ce_{TRACEPARENT}", self.traceparent))
        return [(k, v.encode()) for k, v in pairs]

    def data_json(self) -> Any:
        return loads_bounded(self.data, what="data")


# Record values are read by the one strict JSON parser, with the Kafka edge's bounds.
_LIMITS = strict_json.Limits(max_bytes=VALUE_MAX_BYTES, max_depth=DEPTH_MAX, max_items=ITEMS_MAX)


def loads_bounded(value: bytes, *, what: str = "value") -> Any:
    """Strict, bounded JSON (shared.platform.strict_json): UTF-8, size/depth/items bounded, no NaN, no key twice."""
    try:
        return strict_json.loads(value, _LIMITS, what=what)
    except strict_json.JsonRefused as exc:
        raise EnvelopeError(str(exc)) from None


def _headers_dict(headers: Headers | None) -> dict[str, str]:
    """The headers this project reads, decoded; an unreadable one is an EnvelopeError naming it."""
    result: dict[str, str] = {}
    for key, raw in headers or ():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raw_name = key.encode("utf-8", "surrogateescape")
            raise EnvelopeError(f"a header name is not UTF-8: {raw_name[:60]!r}") from exc
        name = key.lower()
        if not (name.startswith("ce_") or name == "content-type"):
            continue  # not read by this project; kept as sent in any dead letter
        if name in result:
            raise EnvelopeError(f"header {key!r} is sent more than once")
        if raw is None:
            raise EnvelopeError(f"header {key!r} is NULL (no value)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {key!r} is not UTF-8 (byte {exc.start})") from exc
        if len(text) > HEADER_MAX:
            raise EnvelopeError(f"header {key!r} is {len(text):,} characters; the limit is {HEADER_MAX}")
        if _CONTROL.search(text):
            raise EnvelopeError(f"header {key!r} contains a control character or line break")
        result[name] = text
    return result


def _check_text(attrs: dict[str, Any], mode: str, *, read_from_headers: bool) -> None:
    for name in ("id", "source"):
        if len(attrs[name]) > ID_MAX:
            raise EnvelopeError(f"{mode} attribute {name!r} is {len(attrs[name]):,} characters; "
                                f"the limit is {ID_MAX}")
    if read_from_headers:  # _headers_dict checked each value's length and characters as it decoded it
        return
    for name, value in attrs.items():
        if isinstance(value, str) and name != "data" and (
                len(value) > HEADER_MAX or _CONTROL.search(value) or not encodes_as_utf8(value)):
            raise EnvelopeError(f"{mode} attribute {name!r} is over {HEADER_MAX} characters or holds a "
                                f"control character")


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise EnvelopeError(f"time {value[:60]!r} has no UTC offset")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise EnvelopeError(f"time {value[:60]!r} is not RFC 3339") from exc


def _check_required(attrs: dict[str, Any], mode: str, *, read_from_headers: bool = False) -> None:
    missing = [name for name in REQUIRED if not attrs.get(name)]
    if missing:
        raise EnvelopeError(f"{mode} CloudEvent lacks required attribute(s): {', '.join(missing)}")
    if attrs["specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported specversion {attrs['specversion']!r}; expected {SPECVERSION}")
    for name in REQUIRED:
        if not isinstance(attrs[name], str):
            raise EnvelopeError(f"attribute {name!r} must be a string")
    for name in ("time", "subject", CORRELATION, CAUSATION, "datacontenttype"):
        if attrs.get(name) is not None and not isinstance(attrs[name], str):
            raise EnvelopeError(f"attribute {name!r} must be a string")
    _check_text(attrs, mode, read_from_headers=read_from_headers)


def decode(value: bytes | None, headers: Headers | None) -> CloudEvent:
    """Read a Kafka record as a CloudEvent (binary or structured mode)."""
    hdrs = _headers_dict(headers)
    content_type = hdrs.get("content-type", "").split(";")[0].strip().lower()
    if value is None:
        raise EnvelopeError("record has no value")
    if content_type == STRUCTURED or ("ce_id" not in hdrs and content_type in ("", JSON) and _looks_structured(value)):
        return _decode_structured(value)
    attrs = {key[3:]: val for key, val in hdrs.items() if key.startswith("ce_")}
    _check_required(attrs, "binary-mode", read_from_headers=True)
    if content_type not in (JSON, ""):
        raise EnvelopeError(f"unsupported content-type {content_type!r}; expected {JSON}")
    return CloudEvent(
        id=attrs["id"],
        source=attrs["source"],
        type=attrs["type"],
        data=value,
        time=_parse_time(attrs.get("time")),
        subject=attrs.get("subject"),
        correlation_id=attrs.get(CORRELATION) or attrs["id"],
        causation_id=attrs.get(CAUSATION),
        traceparent=_traceparent(attrs.get(TRACEPARENT)),
    )


def _traceparent(value: Any) -> str | None:
    # A malformed traceparent is dropped, not a reason to refuse the event: tracing is advisory.
    parsed = parse_traceparent(value) if isinstance(value, str) else None
    return parsed.header() if parsed is not None else None


def _looks_structured(value: bytes) -> bool:
    # A producer that forgot the content-type header but sent a structured event.
    try:
        body = loads_bounded(value)
    except EnvelopeError:
        return False
    return isinstance(body, dict) and "specversion" in body and "data" in body


def _decode_structured(value: bytes) -> CloudEvent:
    body = loads_bounded(value, what="structured CloudEvent")
    if not isinstance(body, dict):
        raise EnvelopeError("structured CloudEvent must be a JSON object")
    _check_required(body, "structured-mode")
    dct = str(body.get("datacontenttype") or JSON)
    if dct.split(";")[0].strip().lower() != JSON:
        raise EnvelopeError(f"unsupported datacontenttype {dct!r}; expected {JSON}")
    if "data" not in body:
        raise EnvelopeError("structured CloudEvent has no data")
    return CloudEvent(
        id=body["id"],
        source=body["source"],
        type=body["type"],
        data=json.dumps(body["data"], ensure_ascii=False).encode(),
        time=_parse_time(body.get("time")),
        subject=body.get("subject"),
        correlation_id=body.get(CORRELATION) or body["id"],
        causation_id=body.get(CAUSATION),
        traceparent=_traceparent(body.get(TRACEPARENT)),
    )
