"""Hostile requests to every route of the three services, served by uvicorn on a real socket.

Every operation of each service's OpenAPI document gets generated requests (hypothesis) that are
hostile in one way at a time:
  * JSON bodies: NaN / Infinity / 1e999, lone surrogates, control characters, duplicated keys,
    deep nesting, huge strings and integers, non-UTF-8 bytes, truncated JSON, and, inside an
    otherwise valid body, a wrong type (numeric strings, true, 1000.0 for money and counts), a
    line break or control character in a single-line field, a javascript: link;
  * headers: If-Match with Unicode digits ("²", "٣"), Idempotency-Key with spaces or non-ASCII,
    odd Content-Type, bodies larger than the route's limit (Content-Length given and chunked);
  * path parameters: %00, %FF, overlong UTF-8, encoded surrogates, Unicode digits, '..', huge.
Requests go half through a raw socket (bytes written by hand, read back by h11's parser) and half
through httpx. Every answer must be a 4xx with a JSON reason, every table of the service's schema
must be byte-identical afterwards (tests/security/helpers.fingerprint), and no ERROR record with
a traceback may be logged. Examples per operation: HOSTILE_EXAMPLES (default 12; the long run in
docs/reliability.md uses HOSTILE_EXAMPLES=200).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections import Counter
from datetime import timedelta
from typing import Any

import h11
import httpx
import pytest
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tests.integration.commitments.helpers import bpu_commitment

from .helpers import changed, fingerprint
from .test_fuzz_openapi import LoopThread, Served, Target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas")]

# Valid bodies that would end the fixture (a cancelled meeting answers 410 to everything after it):
# sent only in hostile form.
DESTRUCTIVE = {"/meetings/{meeting_id}/cancel", "/commitments/{commitment_id}/withdraw"}
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "12"))
FIGURES: dict[str, Any] = {}

# ---- hostile bodies ---------------------------------------------------------------------------------

NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"]
SURROGATES = [b'"\\ud800"', b'"\\udfff"', b'"a\\ud83d"', b'"\\udc00\\ud800"']
CONTROLS = [b'"a\\u0000b"', b'"\\u001b[2J"', b'"\\u0085"', b'"\\u007f"', b'"x\\u0008"']
WRONG_TYPES = [b'"1000"', b"true", b"false", b"1000.0", b"1e3", b"[]", b"{}", b"null", b'"12abc"', b"-1"]
BAD_LINES = ['Rapat\nATTENDEE:mailto:x@evil.example', 'Rapat\r\nBcc: x@evil.example', ' awal spasi', 'a\u2028b',
             '\u202eabc', 'tab\there', 'x' * 6000]
BAD_URLS = ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "https://x.example/a b",
            "https://x.example/\"onmouseover=alert(1)", "ftp://x.example/", "https://x.example/\nLOCATION:x"]


def valid_bodies(target: Target, start: str, end: str) -> dict[tuple[str, str], dict[str, Any]]:
    meeting = {"title": "Rakor", "starts_at": start, "ends_at": end, "venue": "Mataram", "organizer": "Wagub NTB"}
    commitment = bpu_commitment("52.05")
    recipient = {"name": "Staf Disnakertrans", "role": "disnakertrans_staff", "email": "staf@disnakertrans.go.id"}
    return {
        ("POST", "/meetings"): meeting,
        ("POST", "/meetings/{meeting_id}/reschedule"): {"starts_at": start, "ends_at": end, "reason": "Bentrok"},
        ("POST", "/meetings/{meeting_id}/cancel"): {"reason": "Ditunda"},
        ("POST", "/meetings/{meeting_id}/attendance"): {"invitation_ids": [], "attended": True},
        ("PUT", "/directory/{region_code}/{role}"): {"name": "Sekda", "title": "Sekretaris Daerah",
                                                      "email": "sekda@sumbawakab.go.id"},
        ("POST", "/rsvp/{token}"): {"response": "delegated", "delegate": {
            "name": "Asisten I", "title": "Asisten Pemerintahan", "email": "asisten@sumbawakab.go.id"}},
        ("POST", "/commitments/requests"): {"regions": ["52.05"]},
        ("PUT", "/commitments/{region_code}/draft"): commitment,
        ("POST", "/commitments/{region_code}/submit"): commitment,
        ("POST", "/commitments/{commitment_id}/return"): {"reasons": ["Lengkapi dasar hukum"]},
        ("POST", "/commitments/{commitment_id}/deadline"): {"deadline": end, "reason": "Diperpanjang"},
        ("POST", "/commitments/{commitment_id}/verify"): {"note": "Sesuai"},
        ("POST", "/commitments/{commitment_id}/acknowledge"): {"note": "Sesuai"},
        ("POST", "/commitments/{commitment_id}/withdraw"): {"note": "Ditarik"},
        ("POST", "/recipients"): {**recipient, "recipient_id": "staf-baru"},
        ("PUT", "/recipients/{recipient_id}"): recipient,
    }


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [(path, value)]


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


class Raw(bytes):
    """A JSON fragment to splice in verbatim (what json.dumps cannot write: NaN, duplicate keys...)."""


def _dumps(value: Any) -> bytes:
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, dict):
        return b"{" + b",".join(json.dumps(k).encode() + b":" + _dumps(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_dumps(v) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def hostile_body(draw: st.DrawFn, valid: dict[str, Any] | None) -> tuple[str, bytes]:
    """(kind, bytes) of a body that must be refused whatever else it holds."""
    base = valid or {"x": 1}
    leaves = _leaves(base)
    path, _ = draw(st.sampled_from(leaves)) if leaves else ((), None)
    kind = draw(st.sampled_from(["non_finite", "surrogate", "control", "duplicate", "deep", "huge_int",
                                 "non_utf8", "truncated", "bom", "not_an_object"]
                                + (["wrong_type", "bad_line", "bad_url"] if valid else [])))
    if kind == "non_finite":
        return kind, _dumps(_replace(base, path, Raw(draw(st.sampled_from(NON_FINITE)))))
    if kind == "surrogate":
        return kind, _dumps(_replace(base, path, Raw(draw(st.sampled_from(SURROGATES)))))
    if kind == "control":
        return kind, _dumps(_replace(base, path, Raw(draw(st.sampled_from(CONTROLS)))))
    if kind == "duplicate":
        key, value = next(iter(base.items()))
        body = _dumps(base)
        return kind, body[:-1] + b"," + json.dumps(key).encode() + b":" + _dumps(value) + b"}"
    if kind == "deep":
        depth = draw(st.integers(40, 5000))
        return kind, _dumps(_replace(base, path, Raw(b"[" * depth + b"]" * depth)))
    if kind == "huge_int":
        return kind, _dumps(_replace(base, path, Raw(b"9" * draw(st.integers(31, 5000)))))
    if kind == "non_utf8":
        junk = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc", b"\xfe\xff"]))
        return kind, _dumps(base).replace(b'"', b'"' + junk, 1)
    if kind == "truncated":
        body = _dumps(base)
        return kind, body[:draw(st.integers(0, max(0, len(body) - 1)))] or b"{"
    if kind == "bom":
        return kind, "\ufeff".encode() + _dumps(base)
    if kind == "not_an_object":
        return kind, draw(st.sampled_from([b"[]", b'"text"', b"1", b"null", b"true"]))
    if kind == "wrong_type":
        ints = [(p, v) for p, v in leaves if type(v) is int or type(v) is bool]
        if ints:
            path, _ = draw(st.sampled_from(ints))
            return kind, _dumps(_replace(base, path, Raw(draw(st.sampled_from(WRONG_TYPES[:6])))))
        strs = [(p, v) for p, v in leaves if isinstance(v, str)]
        path, _ = draw(st.sampled_from(strs))
        return kind, _dumps(_replace(base, path, Raw(draw(st.sampled_from([b"1", b"true", b"[]", b"{}"])))))
    strs = [(p, v) for p, v in leaves if isinstance(v, str) and "_at" not in str(p[-1]) and p[-1] != "deadline"
            and p[-1] not in ("response", "segment", "funding_source", "budget_stage", "region_code", "role")
            and not (len(p) > 1 and p[-2] in ("programmes", "regions"))]
    if not strs:
        return "non_finite", _dumps(_replace(base, path, Raw(b"NaN")))
    path, _ = draw(st.sampled_from(strs))
    if kind == "bad_line" or path[-1] not in ("online_url", "webhook_url"):
        name = path[-1]
        multiline = name in ("agenda", "reason", "note") or (len(path) > 1 and path[-2] == "reasons")
        bad = [b for b in BAD_LINES if not multiline or ("\n" not in b and "\t" not in b and " awal" not in b)]
        return "bad_line", _dumps(_replace(base, path, draw(st.sampled_from(bad))))
    return kind, _dumps(_replace(base, path, draw(st.sampled_from(BAD_URLS))))


HOSTILE_SEGMENTS = ["%00", "%FF", "%C0%AF", "%ED%A0%80", "%C2%B2", "..", "%2e%2e%2f", "a%0d%0aX:1", "x" * 3000,
                    "%E2%80%AE", "%F0%9F%99%82", "52.0%00", "%D9%A3", "%22%3E%3Cscript%3E", "52.%C2%B2"]
HOSTILE_IF_MATCH = ['"\u00b2"', "\u00b2", '"\u0663"', 'W/"\uff11"', '"1e3"', '"-1"', '"99999999999999999999"',
                    "*", "", '"1", "2"', '"0x10"']
HOSTILE_KEYS = ["a b", "ключ", "x" * 300, "\t", "a\u00ff"]


# ---- the two clients --------------------------------------------------------------------------------


def raw_request(port: int, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None,
                chunked: bool = False) -> tuple[int, bytes]:
    """Write the request by hand on a socket; parse the answer with h11 (another HTTP implementation)."""
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Transfer-Encoding: chunked" if chunked else b"Content-Length: " + str(len(body)).encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    if body is not None:
        if chunked:
            step = 4096
            data += b"".join(f"{len(body[i:i + step]):x}\r\n".encode() + body[i:i + step] + b"\r\n"
                             for i in range(0, len(body), step)) + b"0\r\n\r\n"
        else:
            data += body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the answer, read with h11; (0, b"") when the connection gives none."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))  # h11 reads answers to a request
    conn.send(h11.EndOfMessage())
    status, content = 0, b""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return status, content
        if event is h11.NEED_DATA:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            conn.receive_data(chunk)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            content += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, content


def test_a_10_mb_chunked_body_gets_413(topic_prefix, schema_for):
    """10 MB sent chunked (no Content-Length) to the RSVP route over a socket: 413 with a JSON reason."""
    loop = LoopThread()
    target = Target("invitations", topic_prefix, schema_for("inv"))
    loop.run(target.start())
    served = Served(target, loop)
    try:
        token = target.real_params["/rsvp/{token}"][0]["token"]
        before = loop.run(fingerprint(target.db, target.schema))
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
            sock.sendall(f"POST /rsvp/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"

            def send() -> None:
                try:
                    for _ in range(160):  # 10 MiB
                        sock.sendall(chunk)
                    sock.sendall(b"0\r\n\r\n")
                except OSError:
                    pass  # refused mid-stream: the server stopped reading, as it should

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            status, content = _read_response(sock)
            sender.join(30)
        assert status == 413 and "bytes" in json.loads(content)["detail"], (status, content)
        assert changed(before, loop.run(fingerprint(target.db, target.schema))) == []
    finally:
        served.close()
        loop.run(target.stop())
        loop.close()


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("service", ["invitations", "commitments", "notifications"])
def test_hostile_requests_get_a_4xx_and_change_nothing(service, topic_prefix, schema_for):
    loop = LoopThread()
    target = Target(service, topic_prefix, schema_for(service[:3]))
    loop.run(target.start())
    if service == "commitments":  # something to act on for the id routes
        target.real_params["/commitments/{region_code}"] = [{"region_code": "52.05"}]
    served = Served(target, loop)
    errors = Tracebacks()
    logging.getLogger().addHandler(errors)
    start = (target.runtime.clock() + timedelta(days=20)).isoformat()
    end = (target.runtime.clock() + timedelta(days=20, hours=3)).isoformat()
    bodies = valid_bodies(target, start, end)
    tally: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    began = time.monotonic()
    try:
        contexts = {(m, r.path): r for r in iter_route_contexts(target.app.routes)
                    for m in (r.methods or set()) - {"HEAD"} if r.include_in_schema}
        routes = sorted(contexts)

        def probe_route(method: str, path: str) -> None:
            real = _real_params(target, path)
            has_body = contexts[method, path].body_field is not None
            limit = (contexts[method, path].openapi_extra or {}).get("x-max-body-bytes", 0)
            kinds = (["body", "header", "path", "oversize"] if has_body else ["header", "path"])
            if "{" not in path:
                kinds = [k for k in kinds if k != "path"]
            uses_if_match = service == "commitments" and method != "GET" and "requests" not in path

            @settings(max_examples=EXAMPLES * len(kinds), deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(data=st.data())
            def probe(data: st.DataObject) -> None:
                kind = data.draw(st.sampled_from(kinds), label="kind")
                via = data.draw(st.sampled_from(["socket", "httpx"]), label="client")
                params = dict(real) if real else {k: "0" for k in _names(path)}
                headers = dict(loop.run(target.auth_for(method, path, params)))
                body: bytes | None = None
                chunked, label = False, kind
                header_only_must_fail = False
                if kind == "body":
                    label, body = data.draw(hostile_body(bodies.get((method, path))), label="body")
                    headers["Content-Type"] = "application/json"
                elif kind == "oversize":
                    # Within the app's 256 KiB cap the server reads the whole body before refusing it;
                    # 10 MB (the app cap, refused mid-stream) is test_a_10_mb_body_gets_413_on_a_socket.
                    size = data.draw(st.sampled_from([limit + 1, min(limit * 2, 200 * 1024)]))
                    body, chunked = b'{"a":"' + b"x" * size + b'"}', data.draw(st.booleans())
                    headers["Content-Type"] = "application/json"
                elif kind == "path":
                    name = data.draw(st.sampled_from(_names(path)))
                    params[name] = data.draw(st.sampled_from(HOSTILE_SEGMENTS))
                    label = f"path {name}"
                    if has_body and (method, path) in bodies and path not in DESTRUCTIVE:
                        body, headers["Content-Type"] = _dumps(bodies[(method, path)]), "application/json"
                else:
                    choice = data.draw(st.sampled_from(["if_match", "idempotency", "content_type"]
                                                       if has_body else ["if_match", "idempotency"]))
                    label = f"header {choice}"
                    if choice == "if_match":
                        headers["If-Match"] = data.draw(st.sampled_from(HOSTILE_IF_MATCH))
                        header_only_must_fail = uses_if_match
                    elif choice == "idempotency":
                        headers["Idempotency-Key"] = data.draw(st.sampled_from(HOSTILE_KEYS))
                        header_only_must_fail = method == "POST" and path in ("/meetings",
                                                                             "/commitments/{region_code}/submit")
                    else:
                        headers["Content-Type"] = data.draw(st.sampled_from(
                            ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=\u00ff",
                             "multipart/form-data; boundary=x", "application/xml"]))
                        header_only_must_fail = (method, path) in bodies and path not in DESTRUCTIVE
                    if has_body and (method, path) in bodies and path not in DESTRUCTIVE:
                        body = _dumps(bodies[(method, path)])
                        headers.setdefault("Content-Type", "application/json")
                url = path
                for name, value in params.items():
                    url = url.replace("{" + name + "}", value if kind == "path" and name in label
                                      else urllib.parse.quote(value, safe=""))
                before = loop.run(fingerprint(target.db, target.schema))
                if via == "socket":
                    encoded = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]
                    status, content = raw_request(served.port, method, url, encoded, body, chunked)
                else:
                    try:
                        response = served.http.request(
                            method, url, headers={k: v.encode("utf-8") for k, v in headers.items()},
                            content=(iter([body]) if chunked else body) if body is not None else None)
                    except httpx.LocalProtocolError:
                        return  # httpx itself refuses to send it; the socket variant covers it
                    status, content = response.status_code, response.content
                after = loop.run(fingerprint(target.db, target.schema))
                tally[f"{method} {path} {label} {via}"] += 1
                statuses[status] += 1
                must_fail = kind in ("body", "oversize") or header_only_must_fail or (
                    kind == "path" and params.get(name) not in ("..",))
                problem = None
                if status >= 500 or status == 0:
                    problem = "server error"
                elif must_fail and not 400 <= status < 500:
                    problem = "not refused"
                elif 400 <= status < 500:
                    try:
                        reason = json.loads(content)["detail"]
                        assert reason
                    except Exception:  # noqa: BLE001
                        problem = "no JSON reason"
                if not (200 <= status < 300) and changed(before, after):
                    problem = f"wrote {changed(before, after)}"
                if problem:
                    failures.append(f"{problem}: {method} {url[:120]} [{label} via {via}] -> {status} "
                                    f"{content[:200]!r} body={body[:120] if body else None!r}")

            probe()

        for method, path in routes:
            probe_route(method, path)
        traceback_records = [r for r in errors.records if r.exc_info]
        assert failures == [], "\n".join(failures[:25])
        assert traceback_records == [], [r.getMessage() for r in traceback_records[:5]]
    finally:
        logging.getLogger().removeHandler(errors)
        served.close()
        loop.run(target.stop())
        loop.close()
    FIGURES[service] = {"operations": len(routes), "requests": sum(tally.values()),
                        "statuses": dict(sorted(statuses.items()))}
    print(f"\n[hostile] {service}: {len(routes)} operations, {sum(tally.values())} requests "
          f"({sum(v for k, v in tally.items() if k.endswith('socket'))} over a raw socket) in "
          f"{time.monotonic() - began:.1f}s, statuses {dict(sorted(statuses.items()))}")


def _names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _real_params(target: Target, path: str) -> dict[str, str] | None:
    names = set(_names(path))
    for template, options in target.real_params.items():
        if path.startswith(template) and names == set(options[0]):
            return options[0]
    if names == {"region_code"}:
        return {"region_code": "52.05"}
    return None
