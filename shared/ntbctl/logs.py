"""`ntbctl logs ID`: every log line of one flow (correlation, trace, event or delivery id), from
the local stack's log files, named files, or standard input."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from shared.ntbctl.output import OUT, CommandError

LOG_FIELDS = ("correlation_id", "trace_id", "event_id", "delivery_id")


def _matches(line: dict[str, Any], wanted: str) -> bool:
    if any(line.get(k) == wanted for k in LOG_FIELDS):
        return True
    # A batch's single line lists its events' ids.
    return any(wanted in (line.get(k) or ()) for k in ("event_ids", "correlation_ids", "trace_ids"))


def _log_text(line: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in line.items() if k not in ("timestamp", "service", "level", "event"))
    return f"{line.get('timestamp', '-')}\t{line.get('service', '-')}\t{line.get('level', '-')}\t{line.get('event', '')}\t{rest}"


def _emit_log(line: dict[str, Any]) -> None:
    if OUT.json:
        OUT.streamed = True
        print(json.dumps(line, ensure_ascii=False), flush=True)  # JSON lines: logs are a stream
    else:
        print(_log_text(line), flush=True)


def _parse(raw: str, wanted: str) -> dict[str, Any] | None:
    if wanted not in raw:  # cheap test first: most lines are about other flows
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) and _matches(line, wanted) else None


def logs(correlation_id: str, directory: Path | None, follow: bool, files: list[str] | None = None) -> int:
    """Log lines of one flow (correlation id, trace id, event or delivery id): from files, `-` for
    standard input (e.g. `kubectl logs deploy/notifications | ntbctl logs ID -`), or the local stack's."""
    if files:
        return _logs_from_files(correlation_id, files, follow)
    directory = directory or Path(os.environ.get("LOCAL_STACK_DIR", Path.cwd() / ".local")) / "logs"
    paths = sorted(directory.glob("*.log"))
    if not paths and not follow:
        raise CommandError(f"no *.log files in {directory}; name log files, or - for standard input")
    seen: dict[Path, int] = {}

    def scan() -> list[dict[str, Any]]:
        found = []
        for path in sorted(directory.glob("*.log")):
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                handle.seek(seen.get(path, 0))
                for raw in handle:
                    line = _parse(raw, correlation_id)
                    if line is not None:
                        found.append(line)
                seen[path] = handle.tell()
        return sorted(found, key=lambda line: str(line.get("timestamp", "")))

    for line in scan():
        _emit_log(line)
    while follow:
        time.sleep(1)
        for line in scan():
            _emit_log(line)
    return 0


def _logs_from_files(wanted: str, files: list[str], follow: bool) -> int:
    with contextlib.ExitStack() as opened:
        handles: list[TextIO] = []
        for name in files:
            if name == "-":
                handles.append(sys.stdin)
                continue
            try:
                handles.append(opened.enter_context(open(name, encoding="utf-8", errors="replace")))
            except OSError as exc:
                raise CommandError(f"cannot read {name}: {exc.strerror}") from None
        # Standard input is a stream (perhaps endless, `kubectl logs -f`): printed as it comes.
        _emit_matching(handles, wanted)
        while follow:
            time.sleep(1)
            _emit_matching(handles, wanted)
    return 0


def _emit_matching(handles: list[TextIO], wanted: str) -> None:
    for handle in handles:
        for raw in handle:
            line = _parse(raw, wanted)
            if line is not None:
                _emit_log(line)
