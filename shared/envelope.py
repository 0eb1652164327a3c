"""CloudEvents 1.0 over Kafka.

Out: binary mode only (ce_* headers, `content-type: application/json`, the data as the
record value). In: binary mode and structured mode (`application/cloudevents+json`).
Decoding never trusts the producer: every failure is an `EnvelopeError` with a reason
that ends up in the dead letter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .tracecontext import parse_traceparent

SPECVERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
# Tracing extensions. CloudEvents extension names are lowercase alphanumerics only.
CORRELATION = "correlationid"
CAUSATION = "causationid"
# CloudEvents distributed-tracing extension: the W3C traceparent of the producing span.
TRACEPARENT = "traceparent"
REQUIRED = ("id", "source", "type", "specversion")

Headers = Sequence[tuple[str, bytes]]


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
        try:
            return json.loads(self.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"data is not valid JSON: {exc}") from exc


def _headers_dict(headers: Headers | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, raw in headers or ():
        if raw is None:
            continue
        try:
            result[key.lower()] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
    return result


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EnvelopeError(f"time {value!r} is not RFC 3339") from exc
    if parsed.tzinfo is None:
        raise EnvelopeError(f"time {value!r} has no UTC offset")
    return parsed


def _check_required(attrs: dict[str, Any], mode: str) -> None:
    missing = [name for name in REQUIRED if not attrs.get(name)]
    if missing:
        raise EnvelopeError(f"{mode} CloudEvent lacks required attribute(s): {', '.join(missing)}")
    if attrs["specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported specversion {attrs['specversion']!r}; expected {SPECVERSION}")
    for name in REQUIRED:
        if not isinstance(attrs[name], str):
            raise EnvelopeError(f"attribute {name!r} must be a string")


def decode(value: bytes | None, headers: Headers | None) -> CloudEvent:
    """Read a Kafka record as a CloudEvent (binary or structured mode)."""
    hdrs = _headers_dict(headers)
    content_type = hdrs.get("content-type", "").split(";")[0].strip().lower()
    if value is None:
        raise EnvelopeError("record has no value")
    if content_type == STRUCTURED or ("ce_id" not in hdrs and content_type in ("", JSON) and _looks_structured(value)):
        return _decode_structured(value)
    attrs = {key[3:]: val for key, val in hdrs.items() if key.startswith("ce_")}
    _check_required(attrs, "binary-mode")
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
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and "specversion" in body and "data" in body


def _decode_structured(value: bytes) -> CloudEvent:
    try:
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"structured CloudEvent is not valid JSON: {exc}") from exc
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
