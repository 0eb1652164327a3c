"""A local SMTP server for the demo that keeps every message as an .eml file.

    python deploy/local/smtp_sink.py --port 2525 --dir .local/mail

Each accepted message is written to <dir>/<n>-<message-id>.eml exactly as received (plus
the envelope recipients in an X-Sink-Rcpt header), so a person can open it in any mail
program. Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class EmlWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = len(list(directory.glob("*.eml")))

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        content: bytes = envelope.original_content or envelope.content
        match = re.search(rb"^Message-ID:\s*<([^>]+)>", content, re.I | re.M)
        ident = re.sub(r"[^A-Za-z0-9._-]", "_", match[1].decode(errors="replace")) if match else "no-id"
        self.count += 1
        path = self.directory / f"{self.count:05d}-{ident[:80]}.eml"
        rcpt = ", ".join(envelope.rcpt_tos).encode()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"X-Sink-Rcpt: " + rcpt + b"\r\n" + content)
        tmp.rename(path)  # a reader never sees half a message
        return "250 Message accepted for delivery"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(EmlWriter(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, writing {args.dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
