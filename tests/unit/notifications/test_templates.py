"""Every shipped template renders in Bahasa Indonesia; a broken one fails loudly."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.notifications.bootstrap import _data
from services.notifications.domain import Recipient, parse_rules
from services.notifications.rendering import Renderer, TemplateFailure, make_environment
from shared.contracts.commitments import (
    CommitmentAcknowledged,
    CommitmentOverdue,
    CommitmentRequested,
    CommitmentReturned,
    CommitmentSubmitted,
    CommitmentWithdrawn,
    DeadlineApproaching,
    DeadlineExtended,
)
from shared.contracts.common import Contact, MeetingInfo
from shared.contracts.invitations import (
    InvitationIssued,
    InvitationRescheduled,
    InvitationResponded,
    MeetingCancelled,
    ReminderDue,
)
from shared.contracts.registry import registry

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
ME = Recipient(recipient_id="r", name="Drs. H. Contoh", title="Sekretaris Daerah", role="sekda", email="a@b.go.id")
MEETING = MeetingInfo(meeting_id=str(uuid.uuid4()), title="Rakor BPJS Ketenagakerjaan <NTB>", starts_at=NOW,
                      ends_at=NOW + timedelta(hours=3), venue="Pendopo", organizer="Wakil Gubernur NTB")
CONTACT = Contact(name="Sekda Dompu", email="sekda@dompukab.go.id")
LINE = {"segment": "pekerja_rentan_bpu", "programmes": ["jkk", "jkm"], "workers": 15000, "months": 12,
        "unit_contribution_rp": 16800, "total_rp": 3024000000, "funding_source": "apbd_kabupaten_kota"}
TRANSITION = dict(commitment_id=uuid.uuid4(), region_code="52.05", fiscal_year=2026, actor="k", at=NOW,
                  total_workers=15000, total_rp=3024000000)
EVENTS = {
    "invitation_issued": InvitationIssued(invitation_id=uuid.uuid4(), meeting_id=uuid.uuid4(), meeting=MEETING,
                                          region_code="52.05", role="sekda", invitee=CONTACT, rsvp_url="https://r/x",
                                          rsvp_expires_at=NOW),
    "reminder_due": ReminderDue(invitation_id=uuid.uuid4(), meeting_id=uuid.uuid4(), meeting=MEETING, role="sekda",
                                invitee=CONTACT, lead="P1D", rsvp_url="https://r/undangan/tok-remind"),
    "invitation_responded": InvitationResponded(invitation_id=uuid.uuid4(), meeting_id=uuid.uuid4(), meeting=MEETING,
                                                region_code="52.05", role="sekda", invitee=CONTACT,
                                                response="delegated", delegate=Contact(name="Wakil"), responded_at=NOW),
    "meeting_rescheduled": InvitationRescheduled(
        invitation_id=uuid.uuid4(), meeting_id=uuid.UUID(MEETING.meeting_id), meeting=MEETING, role="sekda",
        invitee=CONTACT, previous_starts_at=NOW - timedelta(days=1), reason="Agenda Gubernur",
        rsvp_url="https://r/undangan/tok-resch", rsvp_expires_at=NOW - timedelta(hours=12)),
    "meeting_cancelled": MeetingCancelled(meeting=MEETING, meeting_id=uuid.UUID(MEETING.meeting_id)),
    "commitment_requested": CommitmentRequested(commitment_id=uuid.uuid4(), region_code="52.05", fiscal_year=2026,
                                                deadline=NOW),
    "commitment_submitted": CommitmentSubmitted(region_code="52.05", fiscal_year=2026, budget_stage="murni",
                                                signatory_name="Sekda", lines=[LINE], total_workers=15000,
                                                total_rp=3024000000, commitment_id=uuid.uuid4(), revision=1,
                                                submitted_by="k", channel="http"),
    "commitment_returned": CommitmentReturned(**TRANSITION, reasons=["Lampirkan Perbup"]),
    "commitment_acknowledged": CommitmentAcknowledged(**TRANSITION),
    "deadline_approaching": DeadlineApproaching(commitment_id=uuid.uuid4(), region_code="52.05", fiscal_year=2026,
                                                deadline=NOW, status="requested"),
    "commitment_withdrawn": CommitmentWithdrawn(**TRANSITION, reason="Menunggu penetapan APBD Perubahan"),
    "deadline_extended": DeadlineExtended(commitment_id=uuid.uuid4(), region_code="52.05", fiscal_year=2026,
                                          previous_deadline=NOW, deadline=NOW + timedelta(days=7), actor="k"),
    "commitment_overdue": CommitmentOverdue(commitment_id=uuid.uuid4(), region_code="52.05", fiscal_year=2026,
                                            deadline=NOW, status="requested"),
}


@pytest.fixture(scope="module")
def renderer():
    return Renderer(make_environment())


@pytest.mark.parametrize("template", sorted(EVENTS))
def test_each_template_renders_subject_text_and_html(renderer, template):
    """Subject on one line, WITA times, the region's name; HTML escaped."""
    out = renderer.render(template, {"event": EVENTS[template], "recipient": ME, "region": "Kabupaten Dompu",
                                     "event_type": "x"})
    assert out.subject and "\n" not in out.subject
    assert "Drs. H. Contoh" in out.text and "<html" in out.html
    if template.startswith(("invitation", "reminder", "meeting")):
        assert "Selasa, 1 Desember 2026 pukul 09.00 WITA" in out.text
        assert "&lt;NTB&gt;" in out.html and "<NTB>" in out.text
    else:
        assert "Kabupaten Dompu" in out.text
    if template in ("commitment_submitted", "commitment_returned", "commitment_acknowledged", "commitment_withdrawn"):
        assert "Rp3.024.000.000" in out.text and "Rp3.024.000.000" in out.html


# Notices to invitees with nothing left to act on (the meeting is off): no RSVP link.
NO_ACTION = {"meeting_cancelled"}


def test_every_notice_to_an_invitee_carries_their_own_rsvp_link(renderer):
    """Every routed event that reaches invitees holds one invitee's link, and the notice shows it (text and href)."""
    for rule in parse_rules(_data(None, "routing.yaml")):
        if not (rule.invitee or rule.meeting_invitees) or rule.template in NO_ACTION:
            continue
        assert rule.invitee and not rule.meeting_invitees, f"{rule.event}: a meeting-wide audience has no one's link"
        assert "rsvp_url" in registry.spec(rule.event).model.model_fields, rule.event
        event = EVENTS[rule.template]
        for response in (None, "accepted", "declined", "delegated"):
            if "response" in type(event).model_fields:
                event = event.model_copy(update={"response": response})
            out = renderer.render(rule.template, {"event": event, "recipient": ME, "region": None, "event_type": "x"})
            assert event.rsvp_url in out.text, (rule.template, response)
            assert f'href="{event.rsvp_url}"' in out.html, (rule.template, response)


# Notices whose readers have nothing left to do on a page: the why, per template.
NOTHING_TO_DO = {
    "meeting_cancelled": "the meeting is off",
    "commitment_acknowledged": "the last step: the commitment is final",
    "commitment_withdrawn": "the request is withdrawn",
    "invitation_responded": "for the organizer desk's information; the invitations service has no organizer page",
    "daily_digest": "a summary; its readers act on the individual notices",
}


def test_every_notice_links_to_where_its_reader_acts(renderer):
    """A region's officials get their commitment page, reviewers the commitment, the province its dashboard."""
    people = {
        "region": Recipient(recipient_id="r1", name="Sekda", role="sekda", region_code="52.05", email="s@b.go.id"),
        "province": Recipient(recipient_id="r2", name="Asisten", role="province_escalation", email="a@b.go.id"),
        "reviewer": Recipient(recipient_id="r3", name="Verifikator", role="disnakertrans_reviewer", email="v@b.go.id"),
    }
    checked = set()
    for rule in parse_rules(_data(None, "routing.yaml")):
        if rule.template in NOTHING_TO_DO or rule.invitee or rule.meeting_invitees:
            continue  # invitees: test_every_notice_to_an_invitee_carries_their_own_rsvp_link
        event = EVENTS[rule.template]
        audiences = ([people["region"]] if rule.region_roles else []) + (
            [people["reviewer"] if r.endswith(("_reviewer", "_staff")) else people["province"] for r in rule.roles])
        for person in audiences:
            out = renderer.render(rule.template, {"event": event, "recipient": person, "region": "Kabupaten Dompu",
                                                  "event_type": "x"})
            link = ("/komitmen" if person.region_code else
                    f"/tinjauan/{event.commitment_id}" if person.role.endswith("_reviewer") else "/dasbor")
            assert f"http://127.0.0.1:8002{link}" in out.text, (rule.template, person.role)
            assert f'href="http://127.0.0.1:8002{link}"' in out.html, (rule.template, person.role)
            checked.add(rule.template)
    assert {"commitment_requested", "commitment_returned", "commitment_overdue", "commitment_submitted",
            "deadline_approaching", "deadline_extended"} <= checked


def test_every_routed_template_exists(renderer):
    """Each template named in routing.yaml has its text and HTML file."""
    env = make_environment()
    for rule in parse_rules(_data(None, "routing.yaml")):
        env.get_template(f"{rule.template}.txt.j2")
        env.get_template(f"{rule.template}.html.j2")


def test_digest_template(renderer):
    """Counts, Rupiah totals and the WITA date of the digest."""
    ctx = {"recipient": ME, "day": date(2026, 12, 3), "submissions": [
        {"region": "Kabupaten Dompu", "total_rp": 3024000000, "total_workers": 15000}],
        "verifications": [], "overdue": [{"region": "Kota Bima", "deadline": "2026-12-01T16:00:00+08:00"}],
        "submitted_rp": 3024000000, "submitted_workers": 15000, "verified_rp": 0}
    out = renderer.render("daily_digest", ctx)
    assert out.subject == "Ringkasan harian komitmen BPJS Ketenagakerjaan, Kamis, 3 Desember 2026"
    assert "Komitmen disampaikan: 1, total Rp3.024.000.000 untuk 15.000 pekerja" in out.text
    assert "Kota Bima (batas Selasa, 1 Desember 2026 pukul 16.00 WITA)" in out.text


def test_missing_value_raises_instead_of_rendering_blank(renderer):
    """StrictUndefined: a context without the event is an error, not an empty message."""
    with pytest.raises(TemplateFailure, match="commitment_overdue"):
        renderer.render("commitment_overdue", {"recipient": ME, "region": "x", "event_type": "x"})


def test_override_folder_replaces_a_template(tmp_path, renderer):
    """An operator's template folder takes precedence; its errors fail the same way."""
    (tmp_path / "commitment_overdue.txt.j2").write_text(
        "{% block subject %}S{% endblock %}{% block body %}{{ event.no_such_field }}{% endblock %}")
    broken = Renderer(make_environment(str(tmp_path)))
    with pytest.raises(TemplateFailure, match="no_such_field"):
        broken.render("commitment_overdue", {"event": EVENTS["commitment_overdue"], "recipient": ME,
                                             "region": "x", "event_type": "x"})


def test_reschedule_shows_old_and_new_time(renderer):
    """Both the previous and the new start are in WITA."""
    out = renderer.render("meeting_rescheduled", {"event": EVENTS["meeting_rescheduled"], "recipient": ME,
                                                  "region": None, "event_type": "x"})
    assert "Semula : Senin, 30 November 2026 pukul 09.00 WITA" in out.text
    assert "Menjadi: Selasa, 1 Desember 2026 pukul 09.00 WITA s.d. 12.00 WITA" in out.text
