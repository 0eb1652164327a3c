"""Who gets told what, on which channel: routing rules, the directory's preferences, retries.

Pure: no I/O. Callers load rules and recipients and pass `now`.
"""

from __future__ import annotations

import functools
import itertools
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from shared.contracts.notifications import Channel
from shared.platform.retry import backoff_delays
from shared.platform.wita import WITA

# Namespace of deterministic delivery ids: the same (event, recipient, channel) always
# maps to the same id, which becomes the Message-ID and the webhook Idempotency-Key.
DELIVERY_NAMESPACE = uuid.UUID("5b2f1c1e-6a77-4f0e-9d55-0f3a52e0b7a1")


class RoutingError(ValueError):
    """The routing data file is wrong; the service refuses to start with it."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of routing.yaml: an event type, an audience, channels and how urgent it is."""

    event: str
    template: str
    channels: tuple[Channel, ...]
    invitee: bool = False
    meeting_invitees: bool = False
    roles: tuple[str, ...] = ()
    region_roles: tuple[str, ...] = ()
    mandatory: bool = False
    digest: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    recipient_id: str
    name: str
    role: str
    region_code: str | None = None
    title: str = ""
    email: str | None = None
    webhook_url: str | None = None
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    muted: frozenset[str] = field(default_factory=frozenset)
    invitation_id: str | None = None  # invitees only: the UID of their calendar entry

    def address(self, channel: Channel) -> str | None:
        return self.email if channel is Channel.EMAIL else self.webhook_url


@dataclass(frozen=True, slots=True)
class Target:
    """One intended delivery; `problem` set means it is recorded as failed without sending."""

    recipient: Recipient
    channel: Channel
    rule: Rule
    problem: str | None = None


def parse_rules(raw: Mapping[str, Any]) -> list[Rule]:
    rules = []
    for i, item in enumerate(raw.get("rules") or []):
        try:
            audience = item.get("audience") or {}
            rule = Rule(
                event=str(item["event"]),
                template=str(item["template"]),
                channels=tuple(Channel(c) for c in item["channels"]),
                invitee=bool(audience.get("invitee", False)),
                meeting_invitees=bool(audience.get("meeting_invitees", False)),
                roles=tuple(audience.get("roles") or ()),
                region_roles=tuple(audience.get("region_roles") or ()),
                mandatory=bool(item.get("mandatory", False)),
                digest=bool(item.get("digest", False)),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise RoutingError(f"routing rule #{i + 1} is invalid: {exc!r}") from exc
        if not rule.channels:
            raise RoutingError(f"routing rule #{i + 1} ({rule.event}) has no channels")
        if not (rule.invitee or rule.meeting_invitees or rule.roles or rule.region_roles):
            raise RoutingError(f"routing rule #{i + 1} ({rule.event}) has no audience")
        rules.append(rule)
    return rules


def rules_for(rules: Iterable[Rule], event_type: str) -> list[Rule]:
    return [r for r in rules if r.event == event_type]


def mandatory_types(rules: Iterable[Rule]) -> set[str]:
    return {r.event for r in rules if r.mandatory}


def audience(rule: Rule, directory: Sequence[Recipient], *, region_code: str | None,
             invitee: Recipient | None, meeting_invitees: Sequence[Recipient] = ()) -> list[Recipient]:
    """The recipients a rule names for one event: the invitee(s), roles, and the event region's roles."""
    found: dict[str, Recipient] = {}
    if rule.invitee and invitee is not None:
        found[invitee.recipient_id] = invitee
    if rule.meeting_invitees:
        found.update((p.recipient_id, p) for p in meeting_invitees)
    for person in directory:
        if person.role in rule.roles or (
            region_code is not None and person.region_code == region_code and person.role in rule.region_roles
        ):
            found.setdefault(person.recipient_id, person)
    return list(found.values())


def channels_for(rule: Rule, person: Recipient) -> tuple[list[Channel], str | None]:
    """The channels to use for one recipient, or none with the reason.

    A muted event type silences non-mandatory notices only. A mandatory notice (deadlines,
    escalations) goes out even when the person's preferred channels exclude the rule's:
    then every rule channel the person has an address for is used.
    """
    if rule.event in person.muted and not rule.mandatory:
        return [], "muted by the recipient"
    wanted = [c for c in rule.channels if c in person.channels]
    usable = [c for c in wanted if person.address(c)]
    if not usable and rule.mandatory:
        usable = [c for c in rule.channels if person.address(c)]
    if not usable:
        if wanted or rule.mandatory:
            return [], "no address for the rule's channels"
        return [], "no preferred channel in the rule"
    return usable, None


@functools.lru_cache(maxsize=4096)
def address_problem(channel: Channel, address: str) -> str | None:
    """Why an address cannot be used, or None. Syntax only: no DNS look-ups.

    Cached: the same directory addresses are checked for every event, and the e-mail
    syntax check (~0.4 ms) was the consumer's largest single cost (docs/performance.md)."""
    if channel is Channel.EMAIL:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            return f"invalid address: {exc}"
        return None
    parts = urlsplit(address)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "invalid address: a webhook URL must be http(s)://host/..."
    return None


def plan(rule: Rule, people: Iterable[Recipient]) -> list[Target]:
    """Targets for one rule. A person with no usable channel gets a failed email record, so it shows."""
    targets = []
    for person in people:
        channels, why = channels_for(rule, person)
        if not channels:
            if why == "no address for the rule's channels":
                targets.append(Target(person, rule.channels[0], rule, problem=why))
            continue
        for channel in channels:
            address = person.address(channel) or ""
            targets.append(Target(person, channel, rule, problem=address_problem(channel, address)))
    return targets


def delivery_id(source_event_id: str, recipient_id: str, channel: Channel) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{source_event_id}|{recipient_id}|{channel.value}")


def message_id(delivery: uuid.UUID, domain: str) -> str:
    return f"<{delivery}@{domain}>"


def retry_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (1-based): exponential with full jitter."""
    delays = backoff_delays(base=base, cap=cap, rng=rng)
    return next(itertools.islice(delays, max(0, attempt - 1), None))


def next_digest_at(now: datetime, at: time) -> datetime:
    """The first digest moment (WITA wall time `at`) strictly after `now`."""
    local = now.astimezone(WITA)
    candidate = datetime.combine(local.date(), at, tzinfo=WITA)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=WITA)
    return candidate


@dataclass(frozen=True, slots=True)
class DigestSummary:
    submissions: list[dict[str, Any]]
    verifications: list[dict[str, Any]]
    overdue: list[dict[str, Any]]

    @property
    def submitted_rp(self) -> int:
        return sum(i["total_rp"] for i in self.submissions)

    @property
    def submitted_workers(self) -> int:
        return sum(i["total_workers"] for i in self.submissions)

    @property
    def verified_rp(self) -> int:
        return sum(i["total_rp"] for i in self.verifications)

    def context(self) -> dict[str, Any]:
        return {"submissions": self.submissions, "verifications": self.verifications, "overdue": self.overdue,
                "submitted_rp": self.submitted_rp, "submitted_workers": self.submitted_workers,
                "verified_rp": self.verified_rp}


DIGEST_KINDS = {
    "ntb.commitments.commitment.submitted.v1": "submissions",
    "ntb.commitments.commitment.verified.v1": "verifications",
    "ntb.commitments.commitment.overdue.v1": "overdue",
}


def summarize(items: Iterable[tuple[str, Mapping[str, Any]]], region_names: Mapping[str, str]) -> DigestSummary:
    """Fold (event type, payload) items into the digest's three lists.

    A region submitting twice in a day counts once, with its latest figures; an overdue
    region is listed once.
    """
    found: dict[str, dict[str, dict[str, Any]]] = {"submissions": {}, "verifications": {}, "overdue": {}}
    for event_type, data in items:
        kind = DIGEST_KINDS.get(event_type)
        if kind is None:
            continue
        code = data["region_code"]
        entry = {"region_code": code, "region": region_names.get(code, code)}
        if kind == "overdue":
            entry["deadline"] = data["deadline"]
        else:
            entry.update(total_rp=int(data["total_rp"]), total_workers=int(data["total_workers"]))
        found[kind][code] = entry
    order = sorted  # by region code: a stable, familiar order
    return DigestSummary(*(list(found[k][c] for c in order(found[k])) for k in ("submissions", "verifications",
                                                                              "overdue")))
