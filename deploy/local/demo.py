"""The whole Rakor scenario, driven through the public interfaces only (run by demo.sh).

The actors act as they would in production: the organizer and the reviewers call the
services' HTTP APIs with their API keys; officials answer through the RSVP links in the
invitation emails (read from the local SMTP sink's .eml files); two regional finance
systems and BPJS Ketenagakerjaan's system publish CloudEvents on the inbound Kafka topics.
The clock is compressed through the services' settings (see demo.sh).

Exits 0 only when every expected notification was delivered: nothing pending, nothing
failed, every email marked sent is an .eml file in the sink, and each kind of notice
reached its minimum count. Figures and people come from demo_data.yaml.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from aiokafka import AIOKafkaProducer

from shared.platform.formatting import format_rupiah as rupiah
from shared.platform.kafka_security import client_options

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STACK = Path(os.environ.get("LOCAL_STACK_DIR", REPO / ".local"))
RUN_ID = os.environ.get("DEMO_RUN_ID", datetime.now(UTC).strftime("%Y%m%d_%H%M%S"))
MAIL_DIR = Path(os.environ.get("DEMO_MAIL_DIR", STACK / "mail" / RUN_ID))
LOG_DIR = Path(os.environ.get("DEMO_LOG_DIR", STACK / "logs"))
LOG_SUFFIX = os.environ.get("LOCAL_LOG_SUFFIX", "")
PREFIX = os.environ.get("TOPIC_PREFIX", "")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
URL = {name: f"http://127.0.0.1:{os.environ.get(f'LOCAL_{name.upper()}_HTTP_PORT', default)}"
       for name, default in (("invitations", 8001), ("commitments", 8002), ("notifications", 8003))}
MEETING_STARTS_IN = timedelta(seconds=int(os.environ.get("DEMO_MEETING_STARTS_IN_SECONDS", "75")))
T0 = time.monotonic()
T = TypeVar("T")


class DemoFailed(Exception):
    """The scenario could not go on; the message says where and why."""


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---- API keys: the operator's provisioning step (each service's CLI) ----------------------------

def issue_key(service: str, name: str, role: str, region: str | None = None) -> str:
    args = [sys.executable, "-m", f"services.{service}", "keys", "issue", "--name", name, "--role", role]
    if region:
        args += ["--region", region]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                            env=os.environ | {f"{service.upper()}_LOG_JSON": "true"})
    if result.returncode != 0:
        raise DemoFailed(f"issuing a {role} key for {service} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip().splitlines()[-1]


class Api:
    """One service's HTTP API, called with one actor's key."""

    def __init__(self, service: str, token: str) -> None:
        self.client = httpx.Client(base_url=URL[service], headers={"Authorization": f"Bearer {token}"}, timeout=15)
        self.service = service

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code not in expect:
            raise DemoFailed(f"{method} {self.service}{path} -> {response.status_code}: {response.text[:800]}")
        return response.json()


# ---- the SMTP sink's mailbox ------------------------------------------------------------------

@dataclass(frozen=True)
class Mail:
    path: Path
    rcpt: str
    subject: str
    message_id: str
    text: str


_mail_cache: dict[Path, Mail] = {}


def mailbox() -> list[Mail]:
    for path in sorted(MAIL_DIR.glob("*.eml")):
        if path not in _mail_cache:
            message = BytesParser(policy=policy.default).parse(path.open("rb"))
            body = message.get_body(preferencelist=("plain",))
            _mail_cache[path] = Mail(path, str(message["X-Sink-Rcpt"] or "").lower(), str(message["Subject"] or ""),
                                     str(message["Message-ID"] or "").strip("<>"),
                                     body.get_content() if body is not None else "")
    return list(_mail_cache.values())


# The mailed link opens the RSVP page (/undangan/<token>); the demo answers as a system would,
# through the JSON API at /rsvp/<token> with the same token.
RSVP_LINK = re.compile(r"(https?://\S+?)/(?:undangan|rsvp)/([A-Za-z0-9._~-]+)")


def invitation_links(addresses: set[str]) -> dict[str, str]:
    """address -> RSVP link, from the invitation emails (subject 'Undangan: ...') in the sink."""
    links = {}
    for mail in mailbox():
        if mail.subject.startswith("Undangan:") and mail.rcpt in addresses:
            match = RSVP_LINK.search(mail.text)
            if match:
                links[mail.rcpt] = f"{match[1]}/rsvp/{match[2]}"
    return links


def all_links(addresses: set[str]) -> dict[str, str] | None:
    """The links once every address has its invitation, else None."""
    links = invitation_links(addresses)
    return links if len(links) == len(addresses) else None


# ---- Kafka: the external systems ---------------------------------------------------------------

async def publish(records: list[tuple[str, str, dict[str, Any], str, str]]) -> None:
    """(topic, ce_type, payload, source, correlation id): CloudEvents binary mode, key = region code."""
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, **client_options())
    await producer.start()
    try:
        for topic, ce_type, payload, source, correlation_id in records:
            headers = [("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()),
                       ("ce_source", source.encode()), ("ce_type", ce_type.encode()),
                       ("ce_time", datetime.now(UTC).isoformat().encode()),
                       ("content-type", b"application/json"), ("ce_correlationid", correlation_id.encode())]
            await producer.send_and_wait(PREFIX + topic, json.dumps(payload).encode(),
                                         key=payload["region_code"].encode(), headers=headers)
    finally:
        await producer.stop()


# ---- figures (the same rules as the commitments calculator) ------------------------------------

def commitment_body(code: str, spec: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    lines = []
    for item in spec["lines"]:
        line = {"segment": item["segment"], "programmes": ["jkk", "jkm"], "workers": item["workers"],
                "months": item["months"], "funding_source": item["funding_source"],
                "implementing_office": item.get("implementing_office", "Disnaker")}
        if "wage_rp" in item:  # PPU: % of the wage, rounded half up once per worker-month
            rates = data["ppu_percent"]
            percent = Decimal(rates["jkk_by_risk_class"][item["jkk_risk_class"]]) + Decimal(rates["jkm"])
            unit = int((Decimal(item["wage_rp"]) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            line |= {"wage_rp": item["wage_rp"], "jkk_risk_class": item["jkk_risk_class"]}
        else:
            unit = data["bpu_unit_rp"]
        line |= {"unit_contribution_rp": unit, "total_rp": item["workers"] * item["months"] * unit}
        lines.append(line)
    return {"region_code": code, "fiscal_year": 2026, "budget_stage": "murni", "signatory_name": spec["signatory"],
            "legal_basis": spec["legal_basis"], "beneficiary_verification": "NIK via Dukcapil", "lines": lines,
            "total_workers": sum(line["workers"] for line in lines),
            "total_rp": sum(line["total_rp"] for line in lines)}


# ---- the scenario ------------------------------------------------------------------------------

def main() -> int:
    data = yaml.safe_load((HERE / "demo_data.yaml").read_text("utf-8"))
    specs: dict[str, dict[str, Any]] = data["commitments"]
    http_regions = [c for c, s in specs.items() if s["channel"] == "http"]
    kafka_regions = [c for c, s in specs.items() if s["channel"] == "kafka"]
    silent_regions = [c for c, s in specs.items() if s["channel"] == "none"]
    say(f"demo run {RUN_ID}: topics {PREFIX}*, mail {MAIL_DIR}")

    # The operator's provisioning step. Each CLI call takes seconds, so only the organizer's key
    # is awaited now; the others are issued in the background while the invitations go out.
    say("operator issues API keys with each service's CLI")
    wanted: dict[str, tuple[str, str, str, str | None]] = {
        "disnakertrans": ("commitments", "Bidang Jamsos Disnakertrans NTB", "disnakertrans_reviewer", None),
        "bpjs": ("commitments", "BPJS Ketenagakerjaan NTB", "bpjs_reviewer", None),
        "operator": ("notifications", "Operator Rakor NTB", "operator", None)}
    wanted |= {f"region:{c}": ("commitments", f"Operator Disnaker {c}", "region_operator", c) for c in http_regions}
    organizer = Api("invitations", issue_key("invitations", "Biro Pemerintahan Setda NTB (penyelenggara Rakor)",
                                             "organizer"))
    key_pool = ThreadPoolExecutor(max_workers=2)
    pending_keys = {who: key_pool.submit(issue_key, *args) for who, args in wanted.items()}

    # 1. The organizer schedules the Rakor, loads the directory and invites every seat.
    start = datetime.now(UTC).replace(microsecond=0) + MEETING_STARTS_IN
    meeting = organizer.call("POST", "/meetings", json={
        **data["meeting"], "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()})
    meeting_id = meeting["meeting_id"]
    say(f"Rakor scheduled: {meeting_id}, starts {meeting['starts_at']} (WITA)")
    organizer.call("POST", "/directory/import")
    seats = {(e["region_code"], e["role"]): e["email"].lower() for e in organizer.call("GET", "/directory")}
    issued = organizer.call("POST", f"/meetings/{meeting_id}/invitations")
    say(f"{issued['issued']} invitations issued; waiting for the emails in the sink")
    links = wait_for("30 invitation emails", lambda: all_links(set(seats.values())), timeout=60)
    say(f"  {len(links)} invitation emails arrived, each with its RSVP link")

    # 2. Officials answer through their links.
    rsvp = data["rsvp"]
    declined = {(d["region"], d["role"]): d for d in rsvp["declined"]}
    delegated = {(d["region"], d["role"]): d for d in rsvp["delegated"]}
    unanswered = {(d["region"], d["role"]) for d in rsvp["unanswered"]}
    answers: Counter[str] = Counter()
    with httpx.Client(timeout=15) as web:
        def answer(link: str, body: dict[str, Any]) -> None:
            response = web.post(link, json=body)
            if response.status_code != 200:
                raise DemoFailed(f"RSVP {body['response']} -> {response.status_code}: {response.text[:400]}")
            answers[body["response"]] += 1

        for seat, address in sorted(seats.items()):
            if seat in declined:
                answer(links[address], {"response": "declined", "reason": declined[seat]["reason"]})
            elif seat in delegated:
                answer(links[address], {"response": "delegated", "delegate": delegated[seat]["delegate"]})
            elif seat not in unanswered:
                answer(links[address], {"response": "accepted"})
        say(f"officials answered: {answers['accepted']} accepted, {answers['declined']} declined, "
            f"{answers['delegated']} delegated, {len(unanswered)} not answered")
        deputies = {d["delegate"]["email"].lower() for d in delegated.values()}
        deputy_links = wait_for("the delegates' invitation emails", lambda: all_links(deputies), timeout=60)
        for link in deputy_links.values():
            answer(link, {"response": "accepted"})
        say(f"  {len(deputy_links)} delegates received their own invitation and accepted")

    # 3. Reminders fire for those still expected (compressed: 40 s and 20 s before the start).
    while (left := (start - datetime.now(UTC)).total_seconds()) > -1:
        reminders = sum(1 for m in mailbox() if m.subject.startswith("Pengingat:"))
        say(f"  waiting for the start ({left:.0f} s); reminder emails so far: {reminders}")
        time.sleep(min(10.0, max(left + 1, 0.5)))
    say("the Rakor has started; RSVP links are closed")
    tokens = {who: future.result() for who, future in pending_keys.items()}
    key_pool.shutdown()
    disnakertrans = Api("commitments", tokens["disnakertrans"])
    bpjs = Api("commitments", tokens["bpjs"])
    operator = Api("notifications", tokens["operator"])
    say(f"  {len(tokens) + 1} API keys issued (organizer, reviewers, operator, {len(http_regions)} region operators)")

    # 4. Attendance and conclusion.
    status = organizer.call("GET", f"/meetings/{meeting_id}/status")
    came = [seat["invitation_id"] for region in status["regions"] if region["region_code"] not in data["absent_regions"]
            for seat in region["seats"] if seat["response"] == "accepted" and seat["status"] == "active"]
    organizer.call("POST", f"/meetings/{meeting_id}/attendance", json={"invitation_ids": came, "attended": True})
    organizer.call("POST", f"/meetings/{meeting_id}/conclude")
    say(f"attendance recorded ({len(came)} present; absent: {', '.join(data['absent_regions'])}); meeting concluded")

    def commitments() -> dict[str, dict[str, Any]]:
        return {c["region_code"]: c for c in disnakertrans.call("GET", "/commitments")}

    rows = wait_for("ten commitment requests", lambda: r if len(r := commitments()) == 10 else None, timeout=60)
    say(f"commitments opened ten requests (deadline {next(iter(rows.values()))['deadline']} WITA)")

    # 5. Regions submit: over HTTP, or as inbound events from their own finance systems.
    bodies = {code: commitment_body(code, specs[code], data) for code in http_regions + kafka_regions}
    for code in http_regions:
        region = Api("commitments", tokens[f"region:{code}"])
        region.call("POST", f"/commitments/{code}/submit", json=bodies[code],
                    headers={"Idempotency-Key": f"{RUN_ID}-{code}-1"})
        say(f"  {code} submitted over HTTP: {bodies[code]['total_workers']:,} workers, "
            f"{rupiah(bodies[code]['total_rp'])}")
    correlation = {code: str(uuid.uuid4()) for code in kafka_regions}
    asyncio.run(publish([("ntb.commitments.inbound", "ntb.commitments.commitment.submit.v1",
                          bodies[code] | {"submission_id": f"sipd-{code.replace('.', '')}-2026-001"},
                          specs[code]["source"], correlation[code]) for code in kafka_regions]))
    for code in kafka_regions:
        say(f"  {code} submitted by its finance system over Kafka: {bodies[code]['total_workers']:,} workers, "
            f"{rupiah(bodies[code]['total_rp'])} (correlation id {correlation[code]})")
    submitters = http_regions + kafka_regions
    wait_for("every submission to be recorded", lambda: all(
        r[c]["status"] == "submitted" for c in submitters) if (r := commitments()) else None, timeout=60)
    say(f"{len(submitters)} commitments submitted; {', '.join(silent_regions)} has not submitted")

    # 6. Disnakertrans reviews: two returned with reasons, resubmitted; the rest verified.
    rows = commitments()
    for code in submitters:
        if reasons := specs[code].get("return_reasons"):
            disnakertrans.call("POST", f"/commitments/{rows[code]['commitment_id']}/return", json={"reasons": reasons})
            say(f"  Disnakertrans returned {code}: {'; '.join(reasons)}")
    for code in submitters:
        if revision := specs[code].get("revision"):
            bodies[code] = commitment_body(code, specs[code] | revision, data)
            Api("commitments", tokens[f"region:{code}"]).call(
                "POST", f"/commitments/{code}/submit", json=bodies[code], headers={"Idempotency-Key": f"{RUN_ID}-{code}-2"})
            say(f"  {code} resubmitted: {bodies[code]['total_workers']:,} workers, {rupiah(bodies[code]['total_rp'])}")
    for code in submitters:
        disnakertrans.call("POST", f"/commitments/{rows[code]['commitment_id']}/verify",
                           json={"note": "Sesuai hasil Rakor; data NIK akan dipadankan dengan Dukcapil"})
    say(f"Disnakertrans verified {len(submitters)} commitments")
    for code in submitters:
        bpjs.call("POST", f"/commitments/{rows[code]['commitment_id']}/acknowledge",
                  json={"note": "Diterima; pendaftaran peserta dikoordinasikan dengan Kantor Cabang"})
    say(f"BPJS Ketenagakerjaan acknowledged {len(submitters)} commitments")

    # 7. BPJS Ketenagakerjaan's system reports realization.
    reports = data["realization"]
    asyncio.run(publish([("ntb.bpjs.realization", "ntb.bpjs.realization.reported.v1", {
        "report_id": f"bpjs-{r['region'].replace('.', '')}-{r['segment']}-{r['period']}", "region_code": r["region"],
        "fiscal_year": 2026, "segment": r["segment"], "period": r["period"], "workers_enrolled": r["workers_enrolled"],
        "contributions_paid_rp": r["contributions_paid_rp"]}, "//sipp.bpjsketenagakerjaan.go.id/kepesertaan",
        str(uuid.uuid4())) for r in reports]))
    realized_regions = {r["region"] for r in reports}
    say(f"BPJS system published {len(reports)} realization reports for {len(realized_regions)} regions")
    wait_for("realization to be recorded", lambda: all(
        r["realized_workers"] > 0 for r in disnakertrans.call("GET", "/summary")["regions"]
        if r["region_code"] in realized_regions), timeout=60)

    # 8. The silent region's deadline passes: reminded, then escalated to the province.
    overdue = wait_for(f"the overdue escalation of {', '.join(silent_regions)}", lambda: all(
        r[c]["overdue_since"] for c in silent_regions) if (r := commitments()) else None, timeout=90)
    say(f"deadline passed: {', '.join(silent_regions)} escalated to the province as overdue ({bool(overdue)})")

    # 9. Every expected notification delivered?
    ok = check_deliveries(operator, answers, len(deputy_links), len(submitters), specs, silent_regions)
    print_summary(disnakertrans.call("GET", "/summary"))
    traced = kafka_regions[0]
    ok = trace(correlation[traced], traced, operator) and ok
    print(f"\nEmails (.eml, open with any mail program): {MAIL_DIR}")
    first = next((m for m in mailbox() if m.subject.startswith("Undangan:")), None)
    if first is not None:
        print(f"  e.g. the first invitation: {first.path}")
        page = RSVP_LINK.search(first.text)
        if page:
            print(f"The RSVP page that invitation links to (in a browser): {page[1]}/undangan/{page[2]}")
            print("  The demo stops its services when it ends; `make up` starts them and leaves them running.")
    print(f"Logs (JSON lines): {LOG_DIR}/{{invitations,commitments,notifications}}{LOG_SUFFIX}.log")
    print(f"Follow the commitment {traced} submitted over Kafka, from its finance system to the BPJS staff email:")
    print(f"  .venv/bin/ntbctl logs {correlation[traced]} --dir {LOG_DIR}")
    pages = os.environ.get("COMMITMENTS_PUBLIC_BASE_URL", "http://127.0.0.1:8002")
    print(f"The province dashboard: {pages}/dasbor (sign in at {pages}/masuk with an address of "
          "services/commitments/data/staff.yaml; the link is mailed via COMMITMENTS_SMTP_HOST/PORT). "
          "`make up` keeps the services running to open it.")
    say("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def expected_minimums(answers: Counter[str], deputies: int, submitters: int, specs: dict[str, Any],
                      silent: list[str]) -> dict[str, int]:
    returned = sum(1 for s in specs.values() if s.get("return_reasons"))
    return {
        "invitation_issued": 30 + deputies,
        "invitation_responded": sum(answers.values()),   # to the organizer's desk
        "reminder_due": 10,
        "commitment_requested": 10 * 2,                   # Sekda and Kepala Disnaker of each region
        "commitment_submitted": (submitters + returned) * 2,   # at least the BPJS staff, per (re)submission
        "commitment_returned": returned * 2,
        "commitment_acknowledged": submitters * 2,
        "deadline_approaching": len(silent) * 2,
        "commitment_overdue": len(silent) * 2,            # the region's Sekda and the province escalation
    }


def check_deliveries(operator: Api, answers: Counter[str], deputies: int, submitters: int, specs: dict[str, Any],
                     silent: list[str]) -> bool:
    minimums = expected_minimums(answers, deputies, submitters, specs, silent)

    def settled() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = operator.call("GET", "/deliveries", params={"limit": 1000})
        counts = Counter(r["template"] for r in rows)
        pending = sum(1 for r in rows if r["status"] == "pending")
        if pending or any(counts[t] < n for t, n in minimums.items()):
            return None
        return rows

    try:
        rows = wait_for("every notification to be delivered", settled, timeout=90, interval=1)
    except DemoFailed as exc:
        say(str(exc))
        rows = operator.call("GET", "/deliveries", params={"limit": 1000})
    by_template = Counter(r["template"] for r in rows)
    by_status = Counter(r["status"] for r in rows)
    sent_email_ids = {r["delivery_id"] for r in rows if r["channel"] == "email" and r["status"] == "sent"}
    mails = mailbox()
    in_sink = {m.message_id.split("@")[0] for m in mails}
    print("\nNotifications (template: deliveries, expected at least)")
    for template, count in sorted(by_template.items()):
        minimum = minimums.get(template, 0)
        print(f"  {template:<26} {count:>4}  (>= {minimum}){'' if count >= minimum else '  MISSING'}")
    print(f"  status: {dict(by_status)}; emails marked sent {len(sent_email_ids)}, .eml files in the sink {len(mails)}")
    problems = []
    for template, minimum in minimums.items():
        if by_template[template] < minimum:
            problems.append(f"{template}: {by_template[template]} < {minimum}")
    if by_status.get("pending"):
        problems.append(f"{by_status['pending']} deliveries still pending")
    for row in rows:
        if row["status"] == "failed":
            problems.append(f"delivery {row['delivery_id']} ({row['template']} to {row['recipient_id']}) failed: "
                            f"{row['reason']}")
    if len(rows) >= 1000:
        problems.append("more than 1000 deliveries: the check saw only the first 1000")
    if len(sent_email_ids) != len(mails) or sent_email_ids != in_sink:
        problems.append(f"sent emails {len(sent_email_ids)} != .eml files {len(mails)} "
                        f"(missing in sink: {sorted(sent_email_ids - in_sink)[:5]})")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if not problems:
        print("  every expected notification was delivered")
    return not problems


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nProvince summary, FY{summary['fiscal_year']} (Nusa Tenggara Barat)")
    header = f"{'region':<32} {'workers':>9} {'committed Rupiah':>20}  {'status':<22} {'realized':>9}"
    print(header)
    print("-" * len(header))
    for r in summary["regions"]:
        status = r["status"] + (", OVERDUE" if r["overdue"] else "")
        print(f"{r['region_code'] + ' ' + r['region_name']:<32} {r['committed_workers']:>9,} "
              f"{r['committed_budget_display']:>20}  {status:<22} {r['realized_workers']:>9,}")
    p = summary["province"]
    print("-" * len(header))
    print(f"{'52 Provinsi NTB':<32} {p['committed_workers']:>9,} {p['committed_budget_display']:>20}  "
          f"{str(p['regions_submitted']) + ' of 10 committed':<22} {p['realized_workers']:>9,}")
    cov = p["coverage"]
    print(f"coverage: baseline {cov['baseline_percent']}%, with commitments {cov['with_commitments_percent']}%, "
          f"target {cov['target_percent']}%")


def log_lines(correlation_id: str) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(LOG_DIR.glob(f"*{LOG_SUFFIX}.log")):
        for raw in path.read_text("utf-8", errors="replace").splitlines():
            if correlation_id in raw:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
    return sorted(lines, key=lambda line: line.get("timestamp", ""))


def trace(correlation_id: str, region: str, operator: Api) -> bool:
    """The traced commitment's log lines must show the external submission and the email to BPJS staff."""
    bpjs_staff = {r["recipient_id"] for r in operator.call("GET", "/recipients", params={"role": "bpjs_staff"})}
    lines = log_lines(correlation_id)
    print(f"\nTrace of {region}'s external submission, correlation id {correlation_id}:")
    for line in lines:
        extra = " ".join(f"{k}={line[k]}" for k in ("event_type", "region_code", "recipient_id", "recipient_ids",
                                                    "template", "outcome")
                         if line.get(k))
        print(f"  {line.get('timestamp', '')[11:23]} {line.get('service', '?'):<13} {line.get('event', '')}  {extra}")
    submitted = any(line.get("service") == "commitments" and line.get("event") == "commitment submitted"
                    for line in lines)
    emailed = any(line.get("service") == "notifications" and line.get("event") == "deliveries sent"
                  and bpjs_staff & set(line.get("recipient_ids") or ()) for line in lines)
    print(f"  external submission handled by commitments: {'yes' if submitted else 'NO'}; "
          f"email sent to BPJS staff: {'yes' if emailed else 'NO'}")
    return submitted and emailed


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoFailed as exc:
        say(f"demo FAILED: {exc}")
        sys.exit(1)
