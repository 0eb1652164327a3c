"""SMTP sinks for the end-to-end benchmarks, each reporting when it accepted which notification.

- aiosmtpd: `bench.b4 --sink` in a process of its own, appending `accept-time notification-id`.
- c: Postfix's `smtp-sink` (C, made for benchmarks; deploy/local/smtp_sink.sh extracts it from
  Debian's postfix package without installing Postfix), dumping each message to a file of its
  own; the file's modification time is the acceptance time. Found as $SMTP_SINK, on PATH, or
  in .local/tools; when absent the benchmarks run with aiosmtpd only and say so.

`accepted()` maps the X-Notification-Id header (the delivery id) to the acceptance time
(wall clock, the clock the benchmarks stamp submissions with).
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


def c_sink_path() -> str | None:
    for candidate in (os.environ.get("SMTP_SINK"), shutil.which("smtp-sink"),
                      str(ROOT / ".local" / "tools" / "smtp-sink")):
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
        self.accepted: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        """notification id -> acceptance time (wall clock), first acceptance wins."""
        with contextlib.suppress(FileNotFoundError), open(self._path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                parts = line.split()
                if len(parts) == 2:
                    self.accepted.setdefault(parts[1].decode(), float(parts[0]))
        return self.accepted


def aiosmtpd_main(port: int, path: str) -> None:
    """A minimal SMTP sink: accept everything, append `time notification-id` per message."""
    from aiosmtpd.controller import Controller

    out = open(path, "a", buffering=1)  # noqa: SIM115 - line-buffered for the reader

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
            now = time.time()
            for line in envelope.content.split(b"\r\n", 40)[:40]:
                if line.lower().startswith(b"x-notification-id:"):
                    out.write(f"{now:.6f} {line.split(b':', 1)[1].strip().decode()}\n")
                    break
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
    port: int
    process: subprocess.Popen[bytes]

    def accepted(self) -> dict[str, float]:
        raise NotImplementedError

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class AiosmtpdSink(Sink):
    kind = "aiosmtpd"

    def __init__(self) -> None:
        self.port = free_port()
        path = Path(tempfile.mkdtemp(prefix="bench-sink-")) / "accepted.txt"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.sinks", "--sink", str(self.port), str(path)],
                                        env=os.environ | {"PYTHONUNBUFFERED": "1"})
        self._log = SinkLog(path)
        _wait_listening(self.port, self.process, "aiosmtpd sink")

    def accepted(self) -> dict[str, float]:
        return self._log.read()


class CSink(Sink):
    kind = "c"

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="bench-csink-"))
        self._dir.chmod(0o777)  # smtp-sink drops to `nobody` when started as root
        self._seen: set[str] = set()
        self._accepted: dict[str, float] = {}
        args = [binary, "-d", f"{self._dir}/m.", "-m", "256"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        self.process = subprocess.Popen([*args, f"127.0.0.1:{self.port}", "256"], stdout=subprocess.DEVNULL)
        _wait_listening(self.port, self.process, "smtp-sink")

    def accepted(self) -> dict[str, float]:
        for entry in os.scandir(self._dir):
            if entry.name in self._seen:
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

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def start_sink(kind: str) -> Sink:
    if kind == "c":
        binary = c_sink_path()
        if binary is None:
            raise FileNotFoundError("no smtp-sink (deploy/local/smtp_sink.sh, or set SMTP_SINK)")
        return CSink(binary)
    return AiosmtpdSink()


def available_kinds() -> list[str]:
    return (["c"] if c_sink_path() else []) + ["aiosmtpd"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sink"]:
        aiosmtpd_main(int(sys.argv[2]), sys.argv[3])
