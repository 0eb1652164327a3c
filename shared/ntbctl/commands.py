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

# This module is the command line; the commands are in dead_letters.py (dlq, consumer skip), backlog.py
# (outbox, lag), apis.py (audit, deliveries) and logs.py. What ntbctl knows of the services (their names,
# local addresses and the routes it calls) is in services.py only.

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from shared.ntbctl import services
from shared.ntbctl.apis import audit, deliveries_list, deliveries_resend, deliveries_show
from shared.ntbctl.backlog import lag, outbox_list, outbox_requeue
from shared.ntbctl.dead_letters import consumer_skip, dlq_list, dlq_replay, dlq_show
from shared.ntbctl.logs import logs
from shared.ntbctl.output import CONFIG, OUT, SETTINGS, run


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
        for planned in topic_plan.summary(specs):
            print(json.dumps(planned))
        return 0
    report = asyncio.run(topic_plan.apply(CONFIG.get("bootstrap_servers"), specs))
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
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
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


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "run", None) is not None:  # self-contained commands (topics apply)
        return int(args.run(args))
    if args.command == "dlq":
        if args.action == "list":
            return asyncio.run(dlq_list(args.topic, args.limit))
        if args.action == "show":
            return asyncio.run(dlq_show(args.topic, args.partition, args.offset))
        return asyncio.run(dlq_replay(args.topic, args.partition, args.offset))
    if args.command == "consumer":
        return asyncio.run(consumer_skip(args.schema, args.group, args.topic, args.partition, args.offset,
                                         args.reason, args.by))
    if args.command == "lag":
        return asyncio.run(lag())
    if args.command == "outbox":
        if args.action == "list":
            return asyncio.run(outbox_list(tuple(args.schema) if args.schema else services.SCHEMAS))
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
    OUT.fmt = args.output
    return run(lambda: _dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
