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

from shared.platform import tracecontext

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|dsn|database_url)", re.I)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+)")
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
# Credentials inside free text: API keys keep their id, RSVP tokens their invitation id.
_API_KEY = re.compile(r"(ntbk_[0-9A-Za-z]+_)[A-Za-z0-9-]+")
_RSVP_TOKEN = re.compile(r"\b([0-9a-f]{32})\.[0-9]+\.[A-Za-z0-9_-]{20,}")
# Phone numbers as people write them in NTB: +62 / 62 / 0 followed by 8-13 digits, spaces or dashes.
_PHONE = re.compile(r"(?<![\w.:/-])(\+62|62|0) ?[0-9][0-9 ()-]{6,16}([0-9]{2})(?![\w.:/-])")
_PHONE_KEYS = re.compile(r"(phone|mobile|whatsapp|msisdn)", re.I)


# Replacements as functions, not r"\1***\2" templates: a template is expanded in Python for
# every match, ~5x slower. Every group of these patterns takes part in every match.
def _keep_both(m: re.Match[str]) -> str:
    return f"{m[1]}***{m[2]}"


def mask_email(value: str) -> str:
    """Keep the first character and the domain: enough for an operator to tell people apart."""
    return _EMAIL.sub(_keep_both, value)


def mask_phone(value: str) -> str:
    """Keep the country or trunk prefix and the last two digits: +62***90."""
    return _PHONE.sub(_keep_both, value)


# Gateways put their tokens in a webhook URL's path or query (…/hooks/T0/B0/XXXX, ?key=…): only the
# scheme and host of a URL may be shown; user:password@ is dropped with the rest.
_URL = re.compile(r"(?i)\b(https?://)(?:[^\s/@?#]*@)?([^\s/?#:]+)(:[0-9]+)?[^\s\"'<>]*")


def mask_url(value: str) -> str:
    """Every http(s) URL in `value` reduced to scheme, host and port, `/***` for anything after."""

    def keep_host(m: re.Match[str]) -> str:
        rest = m[0][m.end(3 if m[3] else 2) - m.start():]
        return f"{m[1]}{m[2]}{m[3] or ''}{'/***' if rest else ''}"

    return _URL.sub(keep_host, value)


def redact_text(value: str) -> str:
    """Free text from outside (an SMTP reply, an HTTP error) as reviewers and logs may see it:
    URLs reduced to their host, e-mail addresses and phone numbers masked."""
    if "://" in value:
        value = mask_url(value)
    return mask_phone(mask_email(value))


class _MaskUrls(logging.Filter):
    """For HTTP client libraries' records (were they enabled at INFO/DEBUG): URLs lose path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is dropped rather than half-masked
            return False
        record.msg, record.args = redact_text(message), None
        return True


# Redaction runs on every string field of every log line, so it must cost little: profiling
# the consumer and the relay showed a log line costing more CPU than handling the event, most
# of it here. Each pattern is guarded by a test that every one of its matches implies (a
# necessary condition), and searched before `sub`, so a value with nothing to mask is never
# copied. The output is exactly that of applying every pattern in order, unguarded;
# tests/unit/test_logging_redaction.py checks that against the previous implementation.
_PHONE_PREFIXES = ("0", "62", "+62")
# A phone match starts at the beginning of the value or right after a character outside
# [\w.:/-] (its look-behind). This ASCII class matches every such character (and more):
# ids, timestamps, topic and type names contain none of them and skip the phone pattern.
_NOT_TOKEN = re.compile(r"[^0-9A-Za-z_.:/-]")
_RSVP_MIN_LEN = 32 + 1 + 1 + 1 + 20  # hex id, '.', expiry digits, '.', signature
_CLEAN_MAX_LEN = 80
_CLEAN_MAX_ENTRIES = 4096


def _needs_phone_mask(value: str) -> bool:
    return bool((value.startswith(_PHONE_PREFIXES) or _NOT_TOKEN.search(value)) and _PHONE.search(value))


def _mask(value: str) -> str:
    """Mask DSN passwords, API key secrets, RSVP token signatures, e-mails and phones, in that order."""
    if "://" in value and _DSN_PASSWORD.search(value):
        value = _DSN_PASSWORD.sub(lambda m: f"{m[1]}***@", value)
    if "ntbk_" in value and _API_KEY.search(value):
        value = _API_KEY.sub(lambda m: f"{m[1]}***", value)
    if len(value) >= _RSVP_MIN_LEN and "." in value and _RSVP_TOKEN.search(value):
        value = _RSVP_TOKEN.sub(lambda m: f"{m[1]}.***", value)
    if "@" in value and _EMAIL.search(value):
        value = mask_email(value)
    if _needs_phone_mask(value):
        value = mask_phone(value)
    return value


# Strings seen to need no masking (levels, logger, service, topic and type names, event
# texts): they recur on every line, a set lookup replaces the pattern tests. Short values
# only, and the set is emptied when full, so unique ids cannot make it grow without bound.
_CLEAN: set[str] = set()


def _mask_and_remember(value: str) -> str:
    masked = _mask(value)
    if masked is value and len(value) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX_ENTRIES:
            _CLEAN.clear()
        _CLEAN.add(value)
    return masked


_PLAIN, _SECRET, _PHONE_FIELD = 0, 1, 2
_KEY_KINDS: dict[str, int] = {}  # field names are few and recur: classify each once


def _key_kind(key: str) -> int:
    if _SECRET_KEYS.search(key) and key != "event":
        kind = _SECRET
    elif _PHONE_KEYS.search(key):
        kind = _PHONE_FIELD
    else:
        kind = _PLAIN
    if len(_KEY_KINDS) < _CLEAN_MAX_ENTRIES:
        _KEY_KINDS[key] = kind
    return kind


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Secrets never reach a log line, whatever a caller passes in. Hot path: a plain field
    # holding a recurring clean string, or a number, costs a lookup or two.
    kinds, clean = _KEY_KINDS, _CLEAN
    for key, value in list(event_dict.items()):
        kind = kinds.get(key)
        if kind is None:
            kind = _key_kind(key)
        if kind == _PLAIN:
            if type(value) is str:
                if value not in clean:
                    masked = _mask_and_remember(value)
                    if masked is not value:
                        event_dict[key] = masked
            elif isinstance(value, str):  # a str subclass (an enum member): it may hash its own way, no cache
                event_dict[key] = _mask(value)
            # numbers, None, lists and dicts are left as they are (as always)
        elif kind == _SECRET:
            event_dict[key] = "***"
        elif isinstance(value, str):  # a phone field
            event_dict[key] = "***" if not value else value[:3] + "***" + value[-2:]
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
        processors=[*shared_processors, structlog.processors.format_exc_info,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    # httpx logs every request URL at INFO: a webhook's URL carries the gateway's token.
    for client in ("httpx", "httpcore"):
        library = logging.getLogger(client)
        library.setLevel(logging.WARNING)
        if not any(isinstance(f, _MaskUrls) for f in library.filters):
            library.addFilter(_MaskUrls())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


@contextlib.contextmanager
def message_context(**fields: Any) -> Iterator[None]:
    """Bind the message fields for every log line inside the block.

    `traceparent` (an event's, already validated) is not logged as such: it makes that trace
    current for the events written inside the block (shared.platform.tracecontext) and logs its trace_id;
    an event without one starts a new trace here."""
    traced = "traceparent" in fields
    traceparent = fields.pop("traceparent", None)
    present = {k: v for k, v in fields.items() if v is not None}
    # Set and reset by token, not structlog's bound_contextvars: that one scans every context
    # variable on entry and unbinds then rebinds on exit, ~4x the cost, paid per consumed event.
    with contextlib.ExitStack() as stack:
        if traced:
            trace = stack.enter_context(tracecontext.handling(
                traceparent, event_type=fields.get("event_type"), event_id=fields.get("event_id"),
                correlation_id=fields.get("correlation_id")))
            present["trace_id"] = trace.traceparent.trace_id
        tokens = structlog.contextvars.bind_contextvars(**present)
        try:
            yield
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
