"""Drive the system through its public interfaces and show what happened.

For now: the organizer schedules the Rakor over HTTP; the invitations service writes
the meeting and its event in one transaction; the outbox relay publishes it to Kafka;
the notifications service consumes it once. The script then prints every JSON log line
that carries the flow's correlation id, across the three services' logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
LOGS = Path(os.environ.get("LOCAL_STACK_DIR", REPO / ".local")) / "logs"
INVITATIONS = "http://127.0.0.1:8001"


def issue_organizer_key() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.invitations", "keys", "issue", "--name", "Demo organizer (Biro Pemerintahan)",
         "--role", "organizer"],
        cwd=REPO, capture_output=True, text=True, check=True,
        env=os.environ | {"INVITATIONS_LOG_JSON": "true"},
    )
    return result.stdout.strip().splitlines()[-1]


def log_lines(correlation_id: str) -> list[dict]:
    lines = []
    for path in sorted(LOGS.glob("*.log")):
        for raw in path.read_text("utf-8", errors="replace").splitlines():
            if correlation_id in raw:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
    return sorted(lines, key=lambda line: line.get("timestamp", ""))


def main() -> int:
    token = issue_organizer_key()
    start = (datetime.now(UTC) + timedelta(days=7)).astimezone().replace(hour=9, minute=0, second=0, microsecond=0)
    body = {
        "title": "Rapat Koordinasi Perluasan Kepesertaan BPJS Ketenagakerjaan Se-NTB",
        "agenda": "Komitmen anggaran APBD 2026 untuk pekerja rentan, informal, honorer dan non-ASN",
        "starts_at": start.replace(tzinfo=None).isoformat(),
        "ends_at": (start + timedelta(hours=3)).replace(tzinfo=None).isoformat(),
        "venue": "Ruang Rapat Utama Kantor Gubernur NTB, Mataram",
        "organizer": "Wakil Gubernur NTB",
    }
    response = httpx.post(f"{INVITATIONS}/meetings", json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 201:
        print(f"scheduling failed: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    meeting = response.json()
    print(f"Rakor scheduled: {meeting['meeting_id']} at {meeting['starts_at']} (WITA)")

    correlation_id = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if correlation_id is None:
            scheduled = [line for line in log_lines(meeting["meeting_id"]) if line.get("correlation_id")]
            correlation_id = scheduled[0]["correlation_id"] if scheduled else None
        if correlation_id and any(
            line.get("service") == "notifications" and line.get("outcome") == "processed"
            for line in log_lines(correlation_id)
        ):
            break
        time.sleep(0.5)
    else:
        print("notifications did not record the meeting within 60 s", file=sys.stderr)
        return 1
    print(f"\nConsumed by notifications. Log lines with correlation id {correlation_id}:")
    for line in log_lines(correlation_id):
        print(json.dumps(line, ensure_ascii=False))
    print(f"\nLogs: {LOGS}/<service>.log (JSON lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
