"""The SMTP sinks every benchmark that sends e-mail uses (B4, BURST, IDLE, PIPELINE), in processes of their own.

- c: Postfix's `smtp-sink` (C, made for benchmarks, offers PIPELINING). `deploy/local/smtp_sink.sh`
  (`make smtp-sink`, a prerequisite of `make bench`) extracts it from Debian's postfix package
  without installing Postfix; it is found as $SMTP_SINK, on PATH, or in the stack's `tools` folder.
- aiosmtpd: `python -m bench.sinks --sink PORT FILE`, appending `accept-time notification-id`
  per message. Used when there is no C sink (or BENCH_SMTP_SINK=python); reports say which ran.

Two ways to run the C sink: `record=True` dumps each message to a file of its own (its
modification time is the acceptance time) so that `accepted()` maps the X-Notification-Id
header (the delivery id) to when it was accepted, on the wall clock the benchmarks stamp
submissions with; `record=False` only counts (`-c`), the cheapest sink for throughput runs
that read their figures elsewhere (B4). `count()` is how many messages were accepted so far,
either way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .services import free_port

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local") / "tools"


def c_sink_path() -> str | None:
    """Where deploy/local/smtp_sink.sh looks (and puts it); None without one or with BENCH_SMTP_SINK=python."""
    if os.environ.get("BENCH_SMTP_SINK") == "python":
        return None
    for candidate in (os.environ.get("SMTP_SINK"), shutil.which("smtp-sink"), str(TOOLS / "smtp-sink")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {process.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not listening on {port}")


class SinkLog:
    """The aiosmtpd sink's `accept-time notification-id` lines, read incrementally (the harness must stay cheap)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.lines = 0
        self.accepted: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        """notification id -> acceptance time (wall clock), first acceptance wins."""
        with contextlib.suppress(FileNotFoundError), open(self._path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            self.lines += len(lines)
            for line in lines:
                parts = line.split()
                if len(parts) == 2 and parts[1] != b"-":
                    self.accepted.setdefault(parts[1].decode(), float(parts[0]))
        return self.accepted


def aiosmtpd_main(port: int, path: str) -> None:
    """A minimal SMTP sink: accept everything, append `time notification-id` (or `time -`) per message."""
    from aiosmtpd.controller import Controller

    out = open(path, "a", buffering=1)  # noqa: SIM115 - line-buffered for the reader

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
            now = time.time()
            notification = "-"
            for line in envelope.content.split(b"\r\n", 40)[:40]:
                if line.lower().startswith(b"x-notification-id:"):
                    notification = line.split(b":", 1)[1].strip().decode()
                    break
            out.write(f"{now:.6f} {notification}\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


class Sink:
    kind: str
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def accepted(self) -> dict[str, float]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class AiosmtpdSink(Sink):
    kind = "aiosmtpd"
    name = "aiosmtpd (Python)"

    def __init__(self) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="bench-sink-"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.sinks", "--sink", str(self.port), str(self._dir / "accepted.txt")],
            env=os.environ | {"PYTHONUNBUFFERED": "1"})
        self._log = SinkLog(self._dir / "accepted.txt")
        _wait_listening(self.port, self.process, "aiosmtpd sink")

    def accepted(self) -> dict[str, float]:
        return self._log.read()

    def count(self) -> int:
        self._log.read()
        return self._log.lines

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class CSink(Sink):
    kind = "c"
    name = "smtp-sink (Postfix, C)"

    def __init__(self, binary: str, *, record: bool) -> None:
        self.port = free_port()
        self._record = record
        self._dir = Path(tempfile.mkdtemp(prefix="bench-csink-"))
        self._dir.chmod(0o777)  # smtp-sink drops to `nobody` when started as root
        self._counter = self._dir / "counter.out"
        self._seen: set[str] = set()
        self._accepted: dict[str, float] = {}
        # -d: one file per message (acceptance times); -c: only counters on stdout. 256: the listen backlog.
        args = [binary, *(["-d", f"{self._dir}/m."] if record else ["-c"]),
                *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{self.port}", "256"]
        with open(self._counter, "wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        _wait_listening(self.port, self.process, "smtp-sink")

    def accepted(self) -> dict[str, float]:
        if not self._record:
            raise RuntimeError("a counting sink (record=False) keeps no acceptance times")
        for entry in os.scandir(self._dir):
            if entry.name in self._seen or not entry.name.startswith("m."):
                continue
            with contextlib.suppress(OSError):
                mtime = entry.stat().st_mtime
                with open(entry.path, "rb") as f:
                    head = f.read(8192)
                for line in head.split(b"\n"):
                    if line.lower().startswith(b"x-notification-id:"):
                        self._accepted.setdefault(line.split(b":", 1)[1].strip().decode(), mtime)
                        self._seen.add(entry.name)
                        break
        return self._accepted

    def count(self) -> int:
        if self._record:
            return sum(1 for e in os.scandir(self._dir) if e.name.startswith("m."))
        # -c prints "sess=N quit=N mesg=N" after every message, separated by CRs: the file's tail
        # holds the latest (the whole file is megabytes after 100k e-mails).
        with open(self._counter, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 256))
            tail = f.read()
        last = tail.rstrip(b"\r\n").rsplit(b"\r", 1)[-1]
        return int(last.rsplit(b"mesg=", 1)[1]) if b"mesg=" in last else 0

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def start_sink(kind: str | None = None, *, record: bool = True) -> Sink:
    """`kind` None: the C sink when there is one, else aiosmtpd. `record`: keep acceptance times (see above)."""
    if kind is None:
        kind = "c" if c_sink_path() else "aiosmtpd"
    if kind == "c":
        binary = c_sink_path()
        if binary is None:
            raise FileNotFoundError("no smtp-sink (make smtp-sink, or set SMTP_SINK)")
        return CSink(binary, record=record)
    return AiosmtpdSink()


def available_kinds() -> list[str]:
    return (["c"] if c_sink_path() else []) + ["aiosmtpd"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sink"]:
        aiosmtpd_main(int(sys.argv[2]), sys.argv[3])
