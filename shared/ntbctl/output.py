"""What every `ntbctl` command shares: where things are, how answers are printed, how failures end.

- Where: each address comes from its flag, else its environment variable. Only with
  NTB_ENV=development does a missing one fall back to the local stack's address (and a note
  on stderr says so); otherwise the command stops with exit code 2 and names the flag.
- How: `-o text` (the default: tab-separated lines, for people and grep) or `-o json`
  (one JSON document: an array for lists, an object for one thing), like kubectl.
- How failures end: one line on stderr, `ntbctl: <what went wrong>`, and an exit code:
  0 done, 1 not found / refused / unreachable, 2 usage or configuration. NTBCTL_DEBUG=1
  adds the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.ntbctl.services import LOCAL_APIS
from shared.platform.kafka_security import bootstrap_list
from shared.platform.logging import _mask

OK, FAILED, USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure the operator can act on: printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


@dataclass(frozen=True, slots=True)
class Setting:
    flag: str
    env: str
    development: str
    what: str


SETTINGS = {
    "bootstrap_servers": Setting("--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092", "Kafka"),
    "database_url": Setting("--database-url", "DATABASE_URL", "postgresql://ntb:ntb@127.0.0.1:15432/ntb",
                            "PostgreSQL"),
    **{f"{service}_url": Setting(f"--{service}-url", f"{service.upper()}_URL", local, f"the {service} API")
       for service, local in LOCAL_APIS.items()},
}


@dataclass(slots=True)
class Config:
    """The flags given on the command line (None: not given)."""

    values: dict[str, str | None] = field(default_factory=dict)
    api_key_file: str | None = None

    def get(self, name: str) -> str:
        spec = SETTINGS[name]
        value = self.values.get(name) or os.environ.get(spec.env)
        if value:
            return value
        if os.environ.get("NTB_ENV") == "development":
            print(f"ntbctl: note: {spec.what} at the development default {_mask(spec.development)} "
                  f"(NTB_ENV=development)", file=sys.stderr)
            return spec.development
        raise UsageError(f"where is {spec.what}? pass {spec.flag} or set {spec.env}")

    def optional(self, name: str) -> str | None:
        """The address if given (flag or environment), else None: for commands that can do without it."""
        return self.values.get(name) or os.environ.get(SETTINGS[name].env) or None

    def api_key(self) -> str:
        """The bearer key: from --api-key-file (not a flag value: it would show in `ps`), else NTB_API_KEY."""
        if self.api_key_file:
            try:
                with open(self.api_key_file, encoding="utf-8") as handle:
                    key = handle.read().strip()
            except OSError as exc:
                raise UsageError(f"cannot read --api-key-file: {exc.strerror}") from None
        else:
            key = os.environ.get("NTB_API_KEY", "").strip()
        if not key:
            raise UsageError("no API key: set NTB_API_KEY or pass --api-key-file (an operator key)")
        return key


CONFIG = Config()


def bootstrap_servers() -> list[str]:
    return bootstrap_list(CONFIG.get("bootstrap_servers"))


def database_url() -> str:
    return CONFIG.get("database_url")


def address(name: str) -> str | None:
    """The address given by flag or environment; in development mode the local stack's default."""
    given = CONFIG.optional(name)
    if given is None and os.environ.get("NTB_ENV") == "development":
        return CONFIG.get(name)
    return given


# --- output -------------------------------------------------------------------------------

T = TypeVar("T")


class Output:
    """Rows for a list, or one item: each command computes its data once and hands it here with its
    text rendering; printed as text at once, or kept for one JSON document at the end."""

    def __init__(self, fmt: str = "text") -> None:
        self.fmt = fmt
        self._rows: list[Any] = []
        self._item: Any = None
        self.streamed = False  # JSON lines already written (logs): nothing to add at the end

    @property
    def json(self) -> bool:
        return self.fmt == "json"

    def row(self, data: T, text: Callable[[T], str]) -> None:
        if self.json:
            self._rows.append(data)
        else:
            print(text(data), flush=True)

    def item(self, data: T, text: Callable[[T], str]) -> None:
        if self.json:
            self._item = data
        else:
            print(text(data), flush=True)

    def flush(self) -> None:
        if not self.json or self.streamed:
            return
        document = self._item if self._item is not None else self._rows
        print(json.dumps(document, ensure_ascii=False, indent=2, default=str))


OUT = Output()


def or_dash(value: Any) -> str:
    """A missing value in a text line."""
    return "-" if value is None else str(value)


def progress(done: int, total: int, what: str) -> None:
    """A progress line on stderr (stdout stays the answer): every item at a TTY, else about every tenth."""
    step = 1 if sys.stderr.isatty() or total <= 20 else max(1, total // 10)
    if done == total or done % step == 0:
        end = "\n" if done == total or not sys.stderr.isatty() else "\r"
        print(f"{what}: {done}/{total}", end=end, file=sys.stderr, flush=True)


# --- failures -------------------------------------------------------------------------------

def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _mask(text)[:500]


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line and the exit code for an exception a command let through."""
    import asyncpg  # local: only failures need these names
    import httpx
    from aiokafka.errors import KafkaConnectionError, KafkaError

    if isinstance(exc, CommandError):
        return str(exc), exc.code
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach the API: {type(exc).__name__}: {one_line(exc)}", FAILED
    if isinstance(exc, KafkaConnectionError):
        return f"cannot reach Kafka: {one_line(exc)}", FAILED
    if isinstance(exc, KafkaError):
        return f"Kafka: {type(exc).__name__}: {one_line(exc)}", FAILED
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return "PostgreSQL refused the credentials in DATABASE_URL / --database-url", FAILED
    if isinstance(exc, asyncpg.PostgresError):
        return f"PostgreSQL: {one_line(exc)}", FAILED
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot connect: {type(exc).__name__}: {one_line(exc)}", FAILED
    return f"unexpected error: {type(exc).__name__}: {one_line(exc)} (NTBCTL_DEBUG=1 shows where)", FAILED


def run(command: Callable[[], int]) -> int:
    """Run one command: its exit code, or one line and 1/2 for what it raised; the output flushed."""
    if not os.environ.get("NTBCTL_DEBUG"):
        # The clients' own warnings ("Unable connect to ...") would add lines to the one that explains.
        for name in ("aiokafka", "kafka", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        code = command()
        OUT.flush()
    except BrokenPipeError:
        # The reader went away (`ntbctl ... | head`): not an error; keep the interpreter's exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except KeyboardInterrupt:
        print("ntbctl: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a command body that stops with a message (e.g. "no record at ...")
        if isinstance(exc.code, str):
            print(f"ntbctl: {exc.code}", file=sys.stderr)
            return FAILED
        return int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - every failure ends as one line
        if os.environ.get("NTBCTL_DEBUG"):
            import traceback
            traceback.print_exc()
        message, code = describe(exc)
        print(f"ntbctl: {message}", file=sys.stderr)
        return code
    return code
