"""Routing rules, preferences, mandatory notices, addresses and retry timing."""

import random
from datetime import UTC, datetime, time

import pytest
import yaml

from services.notifications import domain
from services.notifications.bootstrap import _data
from shared.contracts.notifications import Channel

EMAIL, HOOK = Channel.EMAIL, Channel.WEBHOOK


def person(rid, role, region=None, **kw):
    return domain.Recipient(recipient_id=rid, name=rid, role=role, region_code=region,
                            email=kw.pop("email", f"{rid}@ntbprov.go.id"), **kw)


DIRECTORY = [person("rev", "disnakertrans_reviewer"), person("bpjs", "bpjs_staff"),
             person("sekda-dompu", "sekda", "52.05"), person("sekda-bima", "sekda", "52.06"),
             person("esc", "province_escalation")]


def rule(**kw):
    return domain.Rule(**({"event": "x.v1", "template": "t", "channels": (EMAIL, HOOK)} | kw))


def test_shipped_routing_covers_the_issue():
    """Submitted goes to reviewers and BPJS (plus the digest); overdue to the region's Sekda and the province."""
    rules = domain.parse_rules(_data(None, "routing.yaml"))
    submitted = domain.rules_for(rules, "ntb.commitments.commitment.submitted.v1")
    assert {r.roles for r in submitted} == {("disnakertrans_reviewer", "bpjs_staff"), ("provincial_staff",)}
    overdue = next(r for r in domain.rules_for(rules, "ntb.commitments.commitment.overdue.v1") if not r.digest)
    assert overdue.mandatory and overdue.region_roles == ("sekda", "kepala_bpkad") and overdue.roles == ("province_escalation",)
    assert domain.rules_for(rules, "ntb.invitations.invitation.issued.v1")[0].invitee


def test_shipped_directory_has_every_region_sekda():
    """Each of the ten regions has a Sekda in the seed, so overdue escalations always find one."""
    people = _data(None, "recipients.yaml")["recipients"]
    sekdas = {p["region_code"] for p in people if p["role"] == "sekda"}
    assert len(sekdas) == 10


def test_audience_picks_roles_and_only_the_events_region():
    """Region roles are matched against the event's region; province roles everywhere."""
    r = rule(roles=("province_escalation",), region_roles=("sekda",))
    found = domain.audience(r, DIRECTORY, region_code="52.05", invitee=None)
    assert sorted(p.recipient_id for p in found) == ["esc", "sekda-dompu"]


def test_muted_type_is_silenced_unless_mandatory():
    """A muted optional notice yields nothing; a mandatory one goes out anyway."""
    muted = person("m", "sekda", muted=frozenset({"x.v1"}))
    assert domain.plan(rule(), [muted]) == []
    targets = domain.plan(rule(mandatory=True), [muted])
    assert [t.channel for t in targets] == [EMAIL] and targets[0].problem is None


def test_preferred_channels_narrow_the_rule():
    """A person preferring webhook only, with a webhook URL, gets the webhook only."""
    p = person("w", "sekda", webhook_url="https://wa-gateway.ntbprov.go.id/hook", channels=(HOOK,))
    assert [t.channel for t in domain.plan(rule(), [p])] == [HOOK]


def test_mandatory_falls_back_to_any_address():
    """Preferring only a channel they have no address for does not lose a mandatory notice."""
    p = person("w", "sekda", channels=(HOOK,))
    assert [t.channel for t in domain.plan(rule(mandatory=True), [p])] == [EMAIL]


def test_invalid_addresses_are_flagged_not_dropped():
    """A malformed email or a non-http webhook becomes a target with the reason."""
    p = person("bad", "sekda", email="not-an-address", webhook_url="ftp://x", channels=(EMAIL, HOOK))
    problems = {t.channel: t.problem for t in domain.plan(rule(), [p])}
    assert problems[EMAIL].startswith("invalid address") and problems[HOOK].startswith("invalid address")


def test_no_address_at_all_is_recorded():
    """Someone with no address for a mandatory notice shows up as a failed target."""
    p = person("none", "sekda", email=None)
    [target] = domain.plan(rule(mandatory=True), [p])
    assert target.problem == "no address for the rule's channels"


def test_delivery_ids_are_stable_per_event_recipient_channel():
    """The same triple always gives the same id; any difference gives another."""
    a = domain.delivery_id("e1", "r1", EMAIL)
    assert a == domain.delivery_id("e1", "r1", EMAIL)
    assert len({a, domain.delivery_id("e1", "r1", HOOK), domain.delivery_id("e2", "r1", EMAIL)}) == 3
    assert domain.message_id(a, "n.x") == f"<{a}@n.x>"


def test_retry_delay_grows_and_is_capped():
    """Attempt n waits at most base*2^(n-1), never more than the cap, never zero."""
    rng = random.Random(1)
    delays = [domain.retry_delay(n, base=1, cap=60, rng=rng) for n in range(1, 12)]
    assert all(0 < d <= min(60, 2 ** (n - 1)) for n, d in enumerate(delays, start=1))


def test_bad_rules_are_refused():
    """A rule without audience or with an unknown channel stops the service from starting."""
    with pytest.raises(domain.RoutingError):
        domain.parse_rules({"rules": [{"event": "a.v1", "template": "t", "channels": ["email"]}]})
    with pytest.raises(domain.RoutingError):
        domain.parse_rules(yaml.safe_load("rules: [{event: a.v1, template: t, channels: [fax], audience: {roles: [x]}}]"))


def test_next_digest_time_is_in_wita():
    """17:00 WITA is 09:00 UTC; after it, the next one is tomorrow."""
    assert domain.next_digest_at(datetime(2026, 12, 3, 8, 0, tzinfo=UTC), time(17)) == \
        datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert domain.next_digest_at(datetime(2026, 12, 3, 9, 0, tzinfo=UTC), time(17)) == \
        datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_digest_summary_counts_and_totals():
    """Two submissions and a resubmission, one verification, one region overdue twice."""
    sub = "ntb.commitments.commitment.submitted.v1"
    items = [
        (sub, {"region_code": "52.05", "total_rp": 1, "total_workers": 1}),
        (sub, {"region_code": "52.05", "total_rp": 3_024_000_000, "total_workers": 15_000}),
        (sub, {"region_code": "52.04", "total_rp": 1_080_000_000, "total_workers": 20_000}),
        ("ntb.commitments.commitment.verified.v1", {"region_code": "52.04", "total_rp": 1_080_000_000,
                                                    "total_workers": 20_000}),
        ("ntb.commitments.commitment.overdue.v1", {"region_code": "52.72", "deadline": "2026-12-01T16:00:00+08:00"}),
        ("ntb.commitments.commitment.overdue.v1", {"region_code": "52.72", "deadline": "2026-12-01T16:00:00+08:00"}),
    ]
    s = domain.summarize(items, {"52.04": "Kabupaten Sumbawa", "52.05": "Kabupaten Dompu", "52.72": "Kota Bima"})
    assert [i["region"] for i in s.submissions] == ["Kabupaten Sumbawa", "Kabupaten Dompu"]
    assert s.submitted_rp == 4_104_000_000 and s.submitted_workers == 35_000
    assert s.verified_rp == 1_080_000_000 and [i["region"] for i in s.overdue] == ["Kota Bima"]


def test_settings_refuse_a_lease_shorter_than_a_send():
    """A lease that could run out mid-send is a configuration error."""
    from pydantic import ValidationError

    from services.notifications.settings import NotificationsSettings

    with pytest.raises(ValidationError, match="delivery_lease_seconds"):
        NotificationsSettings(delivery_lease_seconds=5, smtp_timeout_seconds=30)
