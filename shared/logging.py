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


def mask_email(value: str) -> str:
    """Keep the first character and the domain: enough for an operator to tell people apart."""
    return _EMAIL.sub(r"\1***\2", value)


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Secrets never reach a log line, whatever a caller passes in.
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event_dict[key] = "***"
        elif isinstance(value, str):
            event_dict[key] = mask_email(_DSN_PASSWORD.sub(r"\1***@", value))
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
