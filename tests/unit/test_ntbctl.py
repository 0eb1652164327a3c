"""ntbctl as operators run it (a subprocess): usage, configuration, errors, exit codes, logs, -o json.

Nothing here needs the stack: addresses that answer nothing (port 1) stand in for an outage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings, strategies as st

from shared.ntbctl.backlog import _lag_line
from shared.ntbctl.dead_letters import _dead_letter, _dead_letter_line

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "NTB_API_KEY", "NTB_ENV", "COMMITMENTS_URL",
                          "NOTIFICATIONS_URL", "INVITATIONS_URL", "NTBCTL_DEBUG")}


def ntbctl(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.ntbctl.commands", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=CLEAN_ENV | env)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntbctl: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("args", [["bogus"], ["dlq"], ["dlq", "show", "t.dlq", "x", "1"], ["deliveries", "resend"],
                                  ["lag", "-o", "yaml"], ["deliveries", "resend", "abc", "--event", "e"]])
def test_usage_mistakes_are_one_line_and_exit_2(args):
    result = ntbctl(*args)
    assert result.returncode == 2
    assert "--help" in one_line_error(result)


def test_a_missing_address_names_its_flag_and_exits_2_outside_development():
    result = ntbctl("outbox", "list")
    assert result.returncode == 2
    assert one_line_error(result) == "ntbctl: where is PostgreSQL? pass --database-url or set DATABASE_URL"
    result = ntbctl("deliveries", "list", NTB_API_KEY="ntbk_a_b")
    assert result.returncode == 2 and "--notifications-url" in one_line_error(result)
    result = ntbctl("deliveries", "list", "--notifications-url", "http://127.0.0.1:1")
    assert result.returncode == 2 and "NTB_API_KEY" in one_line_error(result)


def test_development_mode_falls_back_to_the_local_stack_and_says_so():
    result = ntbctl("--bootstrap-servers", "127.0.0.1:1", "dlq", "list", NTB_ENV="development")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("ntbctl: cannot reach Kafka")


def test_unreachable_services_are_one_line_exit_1_without_the_password():
    result = ntbctl("outbox", "list", "--database-url", "postgresql://ntb:hunter2@127.0.0.1:1/ntb")
    assert result.returncode == 1
    assert "hunter2" not in one_line_error(result)
    result = ntbctl("-o", "json", "deliveries", "show", "x", "--notifications-url", "http://127.0.0.1:1",
                    NTB_API_KEY="ntbk_k_secretvalue")
    assert result.returncode == 1 and "cannot reach the API" in one_line_error(result)
    assert "secretvalue" not in result.stderr


def test_the_api_key_file_is_read_and_a_missing_one_is_a_usage_error(tmp_path):
    result = ntbctl("deliveries", "list", "--notifications-url", "http://127.0.0.1:1",
                    "--api-key-file", str(tmp_path / "nope"))
    assert result.returncode == 2 and "--api-key-file" in one_line_error(result)
    key = tmp_path / "key"
    key.write_text("ntbk_k_s\n")
    result = ntbctl("deliveries", "list", "--notifications-url", "http://127.0.0.1:1", "--api-key-file", str(key))
    assert result.returncode == 1  # got as far as calling the API


LINES = [
    {"timestamp": "2026-12-01T01:00:02Z", "service": "notifications", "level": "info", "event": "delivery sent",
     "correlation_id": "flow-1", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
    {"timestamp": "2026-12-01T01:00:01Z", "service": "commitments", "level": "info", "event": "http request",
     "correlation_id": "flow-1", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "route": "/x"},
    {"timestamp": "2026-12-01T01:00:03Z", "service": "commitments", "level": "info", "event": "events published",
     "correlation_ids": ["flow-2", "flow-1"], "event_ids": ["e1", "e2"],
     "trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]},
    {"timestamp": "2026-12-01T01:00:04Z", "service": "commitments", "level": "info", "event": "other flow",
     "correlation_id": "flow-10", "note": "mentions flow-1 in passing"},
]
STREAM = "\n".join([json.dumps(LINES[0]), "not json flow-1", json.dumps(LINES[1]), "\x00\xff flow-1",
                    json.dumps(LINES[2]), json.dumps(LINES[3]), ""])


def test_logs_read_standard_input_as_a_stream_and_match_ids_not_substrings():
    result = ntbctl("logs", "flow-1", "-", "-o", "json", stdin=STREAM)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event"] for line in got] == ["delivery sent", "http request", "events published"]
    by_trace = ntbctl("logs", "4bf92f3577b34da6a3ce929d0e0e4736", "-", stdin=STREAM)
    assert by_trace.returncode == 0 and len(by_trace.stdout.splitlines()) == 3
    assert by_trace.stdout.splitlines()[0].split("\t")[:4] == ["2026-12-01T01:00:02Z", "notifications", "info",
                                                               "delivery sent"]


def test_logs_read_files_and_the_local_stack_folder_in_time_order(tmp_path):
    (tmp_path / "a.log").write_text(json.dumps(LINES[0]) + "\n")
    (tmp_path / "b.log").write_text(json.dumps(LINES[1]) + "\n" + json.dumps(LINES[3]) + "\n")
    from_dir = ntbctl("logs", "flow-1", "--dir", str(tmp_path), "-o", "json")
    assert [json.loads(x)["event"] for x in from_dir.stdout.splitlines()] == ["http request", "delivery sent"]
    from_file = ntbctl("logs", "flow-1", str(tmp_path / "b.log"))
    assert from_file.returncode == 0 and len(from_file.stdout.splitlines()) == 1
    missing = ntbctl("logs", "flow-1", str(tmp_path / "nope.log"))
    assert missing.returncode == 1 and "cannot read" in one_line_error(missing)
    empty = ntbctl("logs", "flow-1", "--dir", str(tmp_path / "none"))
    assert empty.returncode == 1 and "standard input" in one_line_error(empty)


class _Record:
    partition, offset = 0, 7
    headers = (("dlq_failed_at", b"2026-12-01T01:00:00Z"), ("dlq_consumer", b"commitments"),
               ("dlq_reason", b"invalid: total_rp=1 disagrees"))


def test_one_set_of_data_is_shown_as_tab_separated_text_or_as_json_objects():
    """Each read command's rows are data: the text line is rendered from the same object JSON shows."""
    outbox = {"kind": "outbox", "schema": "commitments", "unpublished": 3, "oldest": "1.5s", "set_aside": 0}
    consumer = {"kind": "consumer", "group": "ntb-notifications", "topic": "ntb.commitments.events",
                "partition": 2, "committed": 40, "end": 42, "lag": 2}
    assert [_lag_line(outbox), _lag_line(consumer)] == [
        "outbox\tcommitments\tunpublished=3\toldest=1.5s\tset_aside=0",
        "consumer\tntb-notifications\tntb.commitments.events[2]\tcommitted=40\tend=42\tlag=2"]
    assert _lag_line({**outbox, "oldest": None}).split("\t")[3] == "oldest=-"
    row = _dead_letter("t.dlq", _Record())
    assert row == {"topic": "t.dlq", "partition": 0, "offset": 7, "failed_at": "2026-12-01T01:00:00Z",
                   "consumer": "commitments", "type": "-", "reason": "invalid: total_rp=1 disagrees"}
    assert _dead_letter_line(row) == "t.dlq\t0\t7\t2026-12-01T01:00:00Z\tcommitments\t-\tinvalid: total_rp=1 disagrees"


def test_help_documents_the_exit_codes_and_the_global_options():
    result = ntbctl("--help")
    assert result.returncode == 0
    assert "Exit codes: 0 done; 1 not found, refused or unreachable; 2 usage" in result.stdout
    assert "--bootstrap-servers" in result.stdout and "-o {text,json}" in result.stdout


IDS = st.one_of(
    st.text(max_size=80),
    st.sampled_from([".", "..", "%2e%2e", "a/../b", "?x=1", "#top"]),
    st.lists(st.sampled_from([".", "/", "%", "?", "#", "a"]), max_size=6).map("".join),
    # What a shell hands Python for bytes that are not UTF-8 (surrogateescape): lone surrogates.
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).map(lambda s: "id" + s),
)


@given(IDS)
@settings(max_examples=300)
def test_an_id_stays_one_path_segment_of_the_route_it_names(delivery_id: str) -> None:
    """Whatever an operator types as an id (slashes, dots, '?', '#', spaces, lone surrogates), the
    call goes to the route named, with the id as its one segment, or ends in a one-line usage error."""
    from shared.ntbctl.output import UsageError
    from shared.ntbctl.services import DELIVERY_AUDIT

    try:
        path = DELIVERY_AUDIT.to(delivery_id=delivery_id)
    except UsageError as exc:
        assert "\n" not in str(exc) and delivery_id.encode("utf-8", "surrogatepass")
        return
    url = httpx.URL("http://ntb.test" + path)
    assert url.path.startswith("/deliveries/") and url.path.endswith("/audit") and not url.query and not url.fragment
    segments = url.raw_path.decode().split("/")
    assert len(segments) == 4 and urllib.parse.unquote(segments[2]) == delivery_id
