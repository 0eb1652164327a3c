"""structlog set-up: JSON lines for machines, a console renderer for people at a TTY.

Every line logged while a message is handled carries the message context bound by
`message_context` (service, event id, type, correlation id, region, topic, partition,
offset) through contextvars, so handlers never pass it around by hand.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import structlog

MESSAGE_FIELDS = (
    "event_id",
    "event_type",
    "correlation_id",
    "region_code",
    "topic",
    "partition",
    "offset",
)

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|dsn|database_url)", re.I)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+)")
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
# Credentials inside free text: API keys keep their id, RSVP tokens their invitation id.
_API_KEY = re.compile(r"(ntbk_[0-9A-Za-z]+_)[A-Za-z0-9-]+")
_RSVP_TOKEN = re.compile(r"\b([0-9a-f]{32})\.[0-9]+\.[A-Za-z0-9_-]{20,}")
# Phone numbers as people write them in NTB: +62 / 62 / 0 followed by 8-13 digits, spaces or dashes.
_PHONE = re.compile(r"(?<![\w.:/-])(\+62|62|0) ?[0-9][0-9 ()-]{6,16}([0-9]{2})(?![\w.:/-])")
_PHONE_KEYS = re.compile(r"(phone|mobile|whatsapp|msisdn)", re.I)


def mask_email(value: str) -> str:
    """Keep the first character and the domain: enough for an operator to tell people apart."""
    return _EMAIL.sub(r"\1***\2", value)


def mask_phone(value: str) -> str:
    """Keep the country or trunk prefix and the last two digits: +62***90."""
    return _PHONE.sub(r"\1***\2", value)


_DIGITS = re.compile(r"[0-9]{2}")


def _mask(value: str) -> str:
    # Cheap membership checks first: this runs on every string of every log line.
    if "://" in value:
        value = _DSN_PASSWORD.sub(r"\1***@", value)
    if "ntbk_" in value:
        value = _API_KEY.sub(r"\1***", value)
    if "." in value and len(value) > 40:
        value = _RSVP_TOKEN.sub(r"\1.***", value)
    if "@" in value:
        value = mask_email(value)
    if _DIGITS.search(value):
        value = mask_phone(value)
    return value


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Secrets never reach a log line, whatever a caller passes in.
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event_dict[key] = "***"
        elif isinstance(value, str) and _PHONE_KEYS.search(key):
            event_dict[key] = "***" if not value else value[:3] + "***" + value[-2:]
        elif isinstance(value, str):
            event_dict[key] = _mask(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and route stdlib logging (aiokafka, uvicorn) through it."""
    if json is None:
        json = not sys.stderr.isatty()
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, so exception messages are scrubbed too.
        structlog.processors.format_exc_info,
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the lines operators need.
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


@contextlib.contextmanager
def message_context(**fields: Any) -> Iterator[None]:
    """Bind the message fields for every log line inside the block."""
    present = {k: v for k, v in fields.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
