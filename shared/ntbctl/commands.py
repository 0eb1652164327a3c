"""`ntbctl`: the operators' command line.

    ntbctl dlq list [--topic TOPIC.dlq] [--limit N]     dead letters, one line each, with their reasons
    ntbctl dlq show TOPIC.dlq PARTITION OFFSET          one dead letter: every header as sent, key and value
    ntbctl dlq replay TOPIC.dlq PARTITION OFFSET        send it back to its original topic, unchanged
    ntbctl consumer skip SCHEMA GROUP TOPIC PARTITION OFFSET --reason WHY
                                                        move a stuck consumer past one record: it is
                                                        dead-lettered with WHY (audited in consumer_skips)
    ntbctl lag                                          outbox lag and rows set aside, consumer lag per group
    ntbctl outbox list [--schema SCHEMA]                outbox rows Kafka refused, set aside, with the reason
    ntbctl outbox requeue SCHEMA ID                     put a set-aside row back for the relay (once its cause is fixed)
    ntbctl audit COMMITMENT_ID                          a commitment's audit trail (commitments API)
    ntbctl deliveries list [--event ID] [--status S]    the notification delivery log
    ntbctl deliveries show DELIVERY_ID                  one delivery and its audit trail
    ntbctl deliveries resend DELIVERY_ID                send a failed delivery again
    ntbctl deliveries resend --event ID | --all-failed  ... every failed one of an event, or all of them
    ntbctl logs ID [FILE ...|-] [--follow]              every log line of one flow (correlation or trace id)
    ntbctl topics apply [--replication 3] [--min-insync 2] [--partitions 3] [--dry-run]
                                                        create / raise every topic from shared.platform.topic_plan

Every read command takes -o json. Global options, addresses and exit codes: below and shared/ntbctl/output.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.platform import kafka_records
from shared.contracts.topics import DLQ_SUFFIX
from shared.platform.dead_letter import stored_body
from shared.platform.outbox import REQUEUE
from shared.platform.kafka import SafeProducer
from shared.ntbctl.output import CONFIG, OUT, SETTINGS, CommandError, captured, progress, run, tsv_rows
from shared.platform.kafka_security import bootstrap_list, client_options

SERVICES = ("invitations", "commitments", "notifications")


def _bootstrap() -> list[str]:
    return bootstrap_list(CONFIG.get("bootstrap_servers"))


def _dsn() -> str:
    return CONFIG.get("database_url")


async def _dlq_topics(admin: AIOKafkaAdminClient) -> list[str]:
    return sorted(t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX))


async def _partitions(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"])


async def _read_all(topic: str, limit: int) -> list[Any]:
    kafka_records.install()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None, **client_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        async def unread() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while len(records) < limit and await unread():
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit)
            for items in batch.values():
                records.extend(items)
        return records[:limit]
    finally:
        await _stop(consumer)


async def _one(topic: str, partition: int, offset: int) -> Any:
    kafka_records.install()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False, group_id=None, **client_options())
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp, [])
        if not records or records[0].offset != offset:
            raise SystemExit(f"no record at {topic}[{partition}]@{offset}")
        return records[0]
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    # aiokafka 0.14 may surface the cancellation of its own internal task when a
    # manually assigned consumer stops; nothing is lost by ignoring it here.
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


def _headers(record: Any) -> dict[str, str]:
    """First value of each header, for reading our own dlq_* headers (NULL reads as empty)."""
    found: dict[str, str] = {}
    for k, v in record.headers or ():
        found.setdefault(k, (v or b"").decode("utf-8", "replace"))
    return found


def _shown(raw: bytes | None) -> Any:
    """A header value or key for `dlq show`: NULL is null, text is text, other bytes are hex."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": raw.hex()}
    return text if text.isprintable() else {"text": text, "hex": raw.hex()}


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() and c != "\t" else " " for c in text)


async def dlq_list(topic: str | None, limit: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    try:
        topics = [topic] if topic else await _dlq_topics(admin)
    finally:
        await admin.close()
    total = 0
    for name in topics:
        for record in await _read_all(name, limit):
            h = _headers(record)
            total += 1
            fields = [name, str(record.partition), str(record.offset), h.get("dlq_failed_at", "-"),
                      h.get("dlq_consumer", "-"), h.get("ce_type", "-"), h.get("dlq_reason", "-")]
            print("\t".join(_one_line(f)[:2000] for f in fields))
    print(f"{total} dead letter(s)", file=sys.stderr)
    return 0


async def dlq_show(topic: str, partition: int, offset: int) -> int:
    """Every header in the order sent, duplicates kept; NULL prints as null, empty as "".

    A dead letter whose body was kept in PostgreSQL (`dlq_body_ref`) shows the original
    record from there (needs DATABASE_URL)."""
    record = await _one(topic, partition, offset)
    headers = [[kafka_records.header_name_bytes(k).decode("utf-8", "backslashreplace"), _shown(v)]
               for k, v in record.headers or ()]
    shown: dict[str, Any] = {"key": _shown(record.key), "headers": headers}
    value = record.value
    ref = _headers(record).get("dlq_body_ref")
    if ref:
        original = await _stored(ref)
        if original is None:
            shown["original"] = f"kept in PostgreSQL as {ref}, not readable here (give --database-url or DATABASE_URL)"
        else:
            key, value, original_headers = original
            shown["original"] = {"key": _shown(key), "headers": [
                [name.decode("utf-8", "backslashreplace"), _shown(v)] for name, v in original_headers]}
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    try:
        print((value or b"").decode("utf-8"))
    except UnicodeDecodeError:
        print((value or b"").hex())
    return 0


async def _stored(ref: str) -> tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]] | None:
    if _address("database_url") is None:
        return None
    schema, _, body_id = ref.partition(".dead_letter_bodies:")
    conn = await asyncpg.connect(_dsn())
    try:
        row = await conn.fetchrow(f'SELECT * FROM "{schema}".dead_letter_bodies WHERE id = $1', int(body_id))
    finally:
        await conn.close()
    return None if row is None else stored_body(row)


async def consumer_skip(schema: str, group: str, topic: str, partition: int, offset: int, reason: str,
                        by: str) -> int:
    """Ask the running consumer `group` to dead-letter the record at topic[partition]@offset and move on.

    Nothing is dropped: the consumer (any replica owning the partition) sends the record to
    `<topic>.dlq` with the reason "moved past by an operator (BY): REASON" and marks the
    request done; the row in `consumer_skips` is the audit trail."""
    if not reason.strip():
        print("a reason is required (--reason)", file=sys.stderr)
        return 2
    if _address("database_url") is None:
        print("no PostgreSQL address (--database-url or DATABASE_URL): the request is written to the "
              "service's database", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(_dsn(), server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('consumer_skips')"):
            print(f"no consumer_skips table in schema {schema}", file=sys.stderr)
            return 1
        await conn.execute(
            "INSERT INTO consumer_skips (consumer, topic, kafka_partition, kafka_offset, reason, requested_by) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", group, topic, partition, offset, reason, by)
    finally:
        await conn.close()
    print(f"requested: {group} dead-letters {topic}[{partition}]@{offset} and moves past it "
          f"(watch `ntbctl dlq list --topic {topic}{DLQ_SUFFIX}`)")
    return 0


async def dlq_replay(topic: str, partition: int, offset: int) -> int:
    """Replay is safe to repeat: the event keeps its ce_id, so consumers' inboxes dedupe it."""
    record = await _one(topic, partition, offset)
    h = _headers(record)
    if h.get("dlq_body_ref"):
        # The record itself is not on the topic (too big to copy, or header names that are not
        # UTF-8): replaying this dead letter would send an empty record.
        print(f"{topic}[{partition}]@{offset} keeps its body in PostgreSQL ({h['dlq_body_ref']}); "
              "see it with `ntbctl dlq show` and have the sender correct and resend it", file=sys.stderr)
        return 1
    original = h.get("dlq_original_topic") or topic.removesuffix(DLQ_SUFFIX)
    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    headers.append(("dlq_replayed_from", f"{topic}:{partition}:{offset}".encode()))
    producer = SafeProducer(_bootstrap(), client_id="ntbctl")
    try:
        await producer.send(original, value=record.value or b"", key=record.key, headers=headers)
    finally:
        await producer.stop()
    print(f"replayed {topic}[{partition}]@{offset} to {original}")
    return 0


async def outbox_list(schemas: tuple[str, ...] = SERVICES) -> int:
    """Rows the relay set aside (outbox_dead), oldest first, with the reason Kafka gave."""
    conn = await asyncpg.connect(_dsn())
    try:
        for schema in schemas:
            if not await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".outbox_dead'):
                continue
            for row in await conn.fetch(
                    f'SELECT id, event_id, topic, key, dead_at, reason FROM "{schema}".outbox_dead ORDER BY id'):
                OUT.row({"schema": schema, "id": row["id"], "dead_at": row["dead_at"].isoformat(), "topic": row["topic"],
                         "key": row["key"], "event_id": row["event_id"], "reason": row["reason"]},
                        f"{schema}\t{row['id']}\t{row['dead_at'].isoformat()}\t{row['topic']}\tkey={row['key']}\t"
                        f"event_id={row['event_id']}\t{row['reason']}")
    finally:
        await conn.close()
    return 0


async def outbox_requeue(schema: str, row_id: int) -> int:
    conn = await asyncpg.connect(_dsn(), server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('outbox_dead')"):
            print(f"no outbox_dead table in schema {schema}", file=sys.stderr)
            return 1
        row = await conn.fetchrow(REQUEUE, row_id)
    finally:
        await conn.close()
    if row is None:
        print(f"no set-aside row {row_id} in {schema} (already requeued?)", file=sys.stderr)
        return 1
    OUT.item({"schema": schema, "requeued": row_id, "outbox_id": row["id"]},
             f"requeued {schema} outbox_dead {row_id} as outbox {row['id']}")
    return 0


async def lag() -> int:
    """Outbox lag needs PostgreSQL, consumer lag Kafka; says which address is missing instead of failing."""
    status = 0
    if _address("database_url") is None:
        print("outbox lag: no PostgreSQL address (--database-url or DATABASE_URL, e.g. "
              "postgresql://USER:PASSWORD@HOST:5432/ntb); skipped", file=sys.stderr)
        status = 2
    else:
        try:
            await _outbox_lag()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            print(f"outbox lag: cannot read PostgreSQL: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    if _address("bootstrap_servers") is None:
        print("consumer lag: no Kafka address (--bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS); skipped",
              file=sys.stderr)
        return 2
    try:
        await _consumer_lag()
    except Exception as exc:  # noqa: BLE001 - an operator's tool reports, it does not trace back
        print(f"consumer lag: cannot read Kafka at {','.join(_bootstrap())}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        status = status or 1
    return status


def _address(name: str) -> str | None:
    """The address given by flag or environment; in development mode the local stack's default."""
    given = CONFIG.optional(name)
    if given is None and os.environ.get("NTB_ENV") == "development":
        return CONFIG.get(name)
    return given


async def _outbox_lag() -> None:
    conn = await asyncpg.connect(_dsn(), timeout=10)
    try:
        for schema in SERVICES:
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox")
            if not exists:
                continue
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, min(created_at) AS oldest FROM {schema}.outbox"
            )
            age = f"{(datetime.now(row['oldest'].tzinfo) - row['oldest']).total_seconds():.1f}s" if row["oldest"] else "-"
            dead = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox_dead") \
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox_dead") else 0
            print(f"outbox\t{schema}\tunpublished={row['n']}\toldest={age}\tset_aside={dead}")
    finally:
        await conn.close()


async def _consumer_lag() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(), **client_options())
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None, **client_options())
    await consumer.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            ends = await consumer.end_offsets(list(offsets))
            for tp, meta in sorted(offsets.items(), key=lambda i: (i[0].topic, i[0].partition)):
                print(f"consumer\t{group}\t{tp.topic}[{tp.partition}]\tcommitted={meta.offset}\t"
                      f"end={ends[tp]}\tlag={max(0, ends[tp] - max(meta.offset, 0))}")
    finally:
        await consumer.stop()
        await admin.close()


async def audit(commitment_id: str, client: httpx.AsyncClient | None = None) -> int:
    """Print the trail as at, actor, role, action, from -> to, reason (one line per transition)."""
    response = await api_call("commitments_url", "GET", f"/commitments/{commitment_id}/audit", client=client)
    for entry in response.json():
        OUT.row(entry, "\t".join([
            str(entry.get("at", "")), str(entry.get("actor", "")), str(entry.get("role", "")),
            str(entry.get("action", "")), f"{entry.get('from_status') or '-'} -> {entry.get('to_status')}",
            str(entry.get("reason") or ""),
        ]))
    return 0


# --- HTTP APIs ---------------------------------------------------------------------------

async def api_call(service_url: str, method: str, path: str, *, params: dict[str, Any] | None = None,
                   client: httpx.AsyncClient | None = None) -> httpx.Response:
    """One call with the operator's key. 2xx comes back; anything else is a one-line CommandError
    (404: not found, 409: refused, 401/403: the key) with the API's own reason."""
    headers = {"Authorization": f"Bearer {CONFIG.api_key()}"}
    own = client is None
    http = client or httpx.AsyncClient(base_url=CONFIG.get(service_url), timeout=CONFIG_TIMEOUT)
    try:
        response = await http.request(method, path, params=params, headers=headers)
    finally:
        if own:
            await http.aclose()
    if response.is_success:
        return response
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if not isinstance(detail, str):
        detail = response.reason_phrase
    hint = {401: " (check NTB_API_KEY)", 403: " (an operator key is needed)"}.get(response.status_code, "")
    raise CommandError(f"{response.status_code} {response.reason_phrase}: {' '.join(detail.split())[:300]}{hint}")


CONFIG_TIMEOUT = 15.0

DELIVERY_COLUMNS = ("delivery_id", "status", "channel", "recipient_id", "address", "attempts", "source_event_type",
                    "reason")


def _delivery_line(d: dict[str, Any]) -> str:
    return "\t".join(str(d.get(c) if d.get(c) is not None else "-") for c in DELIVERY_COLUMNS)


async def deliveries_list(*, event_id: str | None, recipient_id: str | None, status: str | None, limit: int) -> int:
    params = {k: v for k, v in {"event_id": event_id, "recipient_id": recipient_id, "status": status,
                                "limit": limit}.items() if v is not None}
    rows = (await api_call("notifications_url", "GET", "/deliveries", params=params)).json()
    for d in rows:
        OUT.row(d, _delivery_line(d))
    print(f"{len(rows)} deliveries", file=sys.stderr)
    return 0


async def deliveries_show(delivery_id: str) -> int:
    d = (await api_call("notifications_url", "GET", f"/deliveries/{delivery_id}")).json()
    trail = (await api_call("notifications_url", "GET", f"/deliveries/{delivery_id}/audit")).json()
    lines = [f"{k}:\t{v if v is not None else '-'}" for k, v in d.items()]
    lines += [f"audit:\t{a['at']}\t{a['actor']} ({a['actor_role']})\t{a['action']}\t"
              f"{a['from_status']} -> {a['to_status']}\tattempts before: {a['attempts_before']}" for a in trail]
    OUT.item({**d, "audit": trail}, "\n".join(lines))
    return 0


async def deliveries_resend(*, delivery_id: str | None, event_id: str | None, all_failed: bool, limit: int) -> int:
    """Resend one delivery, the failed ones of an event, or every failed delivery (one event at a time)."""
    if delivery_id is not None:
        d = (await api_call("notifications_url", "POST", f"/deliveries/{delivery_id}/resend")).json()
        OUT.item(d, f"resent {d['delivery_id']} ({d['channel']} to {d['address']}): {d['status']}")
        return 0
    if event_id is not None:
        events = [event_id]
    else:
        failed = (await api_call("notifications_url", "GET", "/deliveries",
                                 params={"status": "failed", "limit": limit})).json()
        events = list(dict.fromkeys(d["source_event_id"] for d in failed))
        if not events:
            print("no failed deliveries", file=sys.stderr)
            return 0
    resent = refused = 0
    for done, event in enumerate(events, start=1):
        try:
            answer = (await api_call("notifications_url", "POST", "/deliveries/resend",
                                     params={"event_id": event})).json()
        except CommandError as exc:
            if not all_failed:
                raise
            refused += 1  # the rest still goes; the reason is shown
            OUT.row({"event_id": event, "resent": [], "error": str(exc)}, f"{event}\trefused\t{exc}")
        else:
            resent += len(answer["resent"])
            refused += len(answer["refused"])
            for delivery in answer["resent"]:
                OUT.row({"event_id": event, "delivery_id": delivery, "result": "resent"},
                        f"{event}\t{delivery}\tresent")
            for r in answer["refused"]:
                OUT.row({"event_id": event, "delivery_id": r["delivery_id"], "result": "refused",
                         "reason": r["reason"]}, f"{event}\t{r['delivery_id']}\trefused\t{r['reason']}")
        if all_failed:
            progress(done, len(events), "events")
    print(f"{resent} resent, {refused} refused", file=sys.stderr)
    return 0 if resent or not refused else 1


# --- logs ----------------------------------------------------------------------------------

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
    handles = []
    try:
        for name in files:
            if name == "-":
                handles.append(sys.stdin)
                continue
            try:
                handles.append(open(name, encoding="utf-8", errors="replace"))  # noqa: SIM115 - closed below
            except OSError as exc:
                raise CommandError(f"cannot read {name}: {exc.strerror}") from None
        for handle in handles:
            # Standard input is a stream (perhaps endless, `kubectl logs -f`): printed as it comes.
            for raw in handle:
                line = _parse(raw, wanted)
                if line is not None:
                    _emit_log(line)
        while follow:
            time.sleep(1)
            for handle in handles:
                for raw in handle:
                    line = _parse(raw, wanted)
                    if line is not None:
                        _emit_log(line)
    finally:
        for handle in handles:
            if handle is not sys.stdin:
                handle.close()
    return 0


def topics_command(sub: Any) -> None:
    """`ntbctl topics apply`: provision every topic of shared.platform.topic_plan (self-contained)."""
    topics = sub.add_parser("topics", help="provision topics").add_subparsers(dest="action", required=True)
    apply = topics.add_parser("apply", help="create missing topics, raise min.insync.replicas")
    env = os.environ.get
    apply.add_argument("--prefix", default=env("TOPIC_PREFIX", ""))
    apply.add_argument("--partitions", type=int, default=int(env("TOPIC_PARTITIONS", "3")))
    apply.add_argument("--replication", type=int, default=int(env("TOPIC_REPLICATION", "1")),
                       help="replicas per partition (production: 3)")
    apply.add_argument("--min-insync", type=int, default=int(env("TOPIC_MIN_INSYNC_REPLICAS", "0")) or None,
                       help="min.insync.replicas (default: 2, or 1 when --replication is 1)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.set_defaults(run=_topics_apply)


def _topics_apply(args: argparse.Namespace) -> int:
    from shared.platform import topic_plan

    specs = topic_plan.plan(args.prefix, partitions=args.partitions, replication=args.replication,
                            min_insync=args.min_insync)
    if args.dry_run:
        for line in topic_plan.summary(specs):
            print(json.dumps(line))
        return 0
    report = asyncio.run(topic_plan.apply(_bootstrap(), specs))
    for line in report:
        print(line)
    return 1 if any("reassign" in line for line in report) else 0


# --- the command line -----------------------------------------------------------------------

EPILOG = """Addresses: each flag falls back to its environment variable (KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL, INVITATIONS_URL, COMMITMENTS_URL, NOTIFICATIONS_URL); only with NTB_ENV=development
does a missing one default to the local stack. API calls use an operator key from NTB_API_KEY or
--api-key-file. Global options go before or after the command.

Exit codes: 0 done; 1 not found, refused or unreachable; 2 usage or configuration.
Errors are one line on stderr (NTBCTL_DEBUG=1 adds the traceback)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage and two lines)
        self.exit(2, f"ntbctl: {message} (see {self.prog} --help)\n")


def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser with defaults; on each command with SUPPRESS, so `ntbctl lag -o json` and
    # `ntbctl -o json lag` mean the same and a later position never resets an earlier one.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_argument_group("global options")
    group.add_argument("-o", "--output", choices=("text", "json"), default=default("text"),
                       help="text (tab-separated, the default) or json")
    for name, spec in SETTINGS.items():
        group.add_argument(spec.flag, dest=name, metavar="URL" if "url" in name else "HOSTS",
                           default=default(None), help=f"{spec.what} (default: ${spec.env})")
    group.add_argument("--api-key-file", metavar="PATH", default=default(None),
                       help="file holding an operator API key (default: $NTB_API_KEY)")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="ntbctl", description=__doc__, epilog=EPILOG,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    _globals(top, top=True)
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        _globals(p, top=False)
        return p

    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True,
                                                                     parser_class=_Parser, metavar="ACTION")
    listing = command(dlq, "list", "dead letters of every topic (or one), with their reasons")
    listing.add_argument("--topic")
    listing.add_argument("--limit", type=int, default=1000)
    for action, text in (("show", "one dead letter: headers and original bytes"),
                         ("replay", "send a dead letter back to its original topic, unchanged (safe to repeat)")):
        p = command(dlq, action, text)
        p.add_argument("topic")
        p.add_argument("partition", type=int)
        p.add_argument("offset", type=int)
    cons = sub.add_parser("consumer", help="consumer groups").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    skip = command(cons, "skip", "dead-letter one record a consumer is stuck on and move past it (audited)")
    skip.add_argument("schema", help="the service's database schema (e.g. commitments)")
    skip.add_argument("group", help="the consumer group (see `ntbctl lag`)")
    skip.add_argument("topic")
    skip.add_argument("partition", type=int)
    skip.add_argument("offset", type=int)
    skip.add_argument("--reason", required=True, help="why; goes into the dead letter and the audit row")
    skip.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asks (default: $USER)")
    command(sub, "lag", "outbox lag and rows set aside per service, consumer lag per group")
    ob = sub.add_parser("outbox", help="outbox rows Kafka refused").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    command(ob, "list", "outbox rows set aside, with the reason").add_argument(
        "--schema", action="append", help="a service's schema (default: all three)")
    requeue = command(ob, "requeue", "put a set-aside row back for the relay (once its cause is fixed)")
    requeue.add_argument("schema")
    requeue.add_argument("row_id", type=int)
    command(sub, "audit", "a commitment's audit trail (commitments API)").add_argument("commitment_id")
    dv = sub.add_parser("deliveries", help="notification deliveries (notifications API)").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    dl = command(dv, "list", "the delivery log, newest first")
    dl.add_argument("--event", dest="event_id")
    dl.add_argument("--recipient", dest="recipient_id")
    dl.add_argument("--status", choices=("pending", "sent", "failed"))
    dl.add_argument("--limit", type=int, default=100)
    command(dv, "show", "one delivery and its audit trail").add_argument("delivery_id")
    rs = command(dv, "resend", "send failed deliveries again (same Message-ID / Idempotency-Key; audited)")
    which = rs.add_mutually_exclusive_group(required=True)
    which.add_argument("delivery_id", nargs="?", help="one delivery")
    which.add_argument("--event", dest="event_id", help="every failed delivery of this event")
    which.add_argument("--all-failed", action="store_true", help="every failed delivery, event by event")
    rs.add_argument("--limit", type=int, default=1000, help="with --all-failed: at most this many deliveries")
    lg = command(sub, "logs", "log lines of one flow (correlation, trace, event or delivery id) across services")
    lg.add_argument("correlation_id", metavar="ID")
    lg.add_argument("files", nargs="*", metavar="FILE", help="log files; - reads standard input "
                                                               "(default: the local stack's .local/logs)")
    lg.add_argument("--dir", type=Path, help="a folder of *.log files (default: $LOCAL_STACK_DIR/logs)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep reading as lines are written")
    topics_command(sub)
    return top


def _dlq_show_json(text: str) -> dict[str, Any]:
    head, _, value = text.partition("\n}\n")
    meta = json.loads(head + "\n}")
    return {**meta, "value": value.rstrip("\n")}


_TOPIC_PARTITION = re.compile(r"(?P<topic>.+)\[(?P<partition>[0-9]+)\]")


def _lag_json(text: str) -> list[dict[str, Any]]:
    rows = tsv_rows(text, {"outbox": ["kind", "schema"], "consumer": ["kind", "group", "partition"]})
    for row in rows:
        match = _TOPIC_PARTITION.fullmatch(str(row.get("partition", "")))
        if match:  # `topic[2]` as kafka-consumer-groups shows it: two fields in JSON
            row["topic"], row["partition"] = match["topic"], int(match["partition"])
    return rows


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "run", None) is not None:  # self-contained commands (topics apply)
        return int(args.run(args))
    if args.command == "dlq":
        if args.action == "list":
            with captured(lambda text: tsv_rows(text, ["topic", "partition", "offset", "failed_at", "consumer",
                                                       "type", "reason"])):
                return asyncio.run(dlq_list(args.topic, args.limit))
        if args.action == "show":
            with captured(_dlq_show_json):
                return asyncio.run(dlq_show(args.topic, args.partition, args.offset))
        return asyncio.run(dlq_replay(args.topic, args.partition, args.offset))
    if args.command == "consumer":
        return asyncio.run(consumer_skip(args.schema, args.group, args.topic, args.partition, args.offset,
                                         args.reason, args.by))
    if args.command == "lag":
        with captured(_lag_json):
            return asyncio.run(lag())
    if args.command == "outbox":
        if args.action == "list":
            return asyncio.run(outbox_list(tuple(args.schema) if args.schema else SERVICES))
        return asyncio.run(outbox_requeue(args.schema, args.row_id))
    if args.command == "audit":
        return asyncio.run(audit(args.commitment_id))
    if args.command == "deliveries":
        if args.action == "list":
            return asyncio.run(deliveries_list(event_id=args.event_id, recipient_id=args.recipient_id,
                                               status=args.status, limit=args.limit))
        if args.action == "show":
            return asyncio.run(deliveries_show(args.delivery_id))
        return asyncio.run(deliveries_resend(delivery_id=args.delivery_id, event_id=args.event_id,
                                             all_failed=args.all_failed, limit=args.limit))
    return logs(args.correlation_id, args.dir, args.follow, args.files)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    CONFIG.values = {name: getattr(args, name, None) for name in SETTINGS}
    CONFIG.api_key_file = args.api_key_file
    CONFIG.output = OUT.fmt = args.output
    return run(lambda: _dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
