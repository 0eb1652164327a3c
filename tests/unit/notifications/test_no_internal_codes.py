"""No notice shows a person an internal code: every rendered text and HTML is read for snake_case
identifiers and English status words, over every template and the states that change its wording."""

from __future__ import annotations

import html
import re

import pytest

from services.notifications.rendering import Renderer, make_environment
from shared.contracts.commitments import CommitmentOverdue, CommitmentSubmitted, DeadlineApproaching
from shared.contracts.common import Contact
from shared.contracts.invitations import InvitationResponded

from .test_templates import EVENTS, LINE, ME, MEETING, NOW, TRANSITION

SNAKE_CASE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
ENGLISH = re.compile(r"\b(requested|draft|submitted|returned|verified|acknowledged|withdrawn|accepted|declined|"
                     r"delegated|pending|status|none|null|true|false)\b", re.IGNORECASE)
TAG = re.compile(r"<[^>]*>")


def variants():
    yield from EVENTS.items()
    base = EVENTS["commitment_submitted"].model_dump()
    yield "commitment_submitted", CommitmentSubmitted(**base | {"revision": 3, "budget_stage": "perubahan",
                                                                "lines": [LINE | {"segment": "non_asn_ppu",
                                                                                  "funding_source": "dbhcht",
                                                                                  "programmes": ["jkk", "jkm", "jht"]}]})
    for status in ("requested", "draft", "returned"):
        common = dict(commitment_id=TRANSITION["commitment_id"], region_code="52.05", fiscal_year=2026,
                      deadline=NOW, status=status)
        yield "commitment_overdue", CommitmentOverdue(**common)
        yield "deadline_approaching", DeadlineApproaching(**common)
    for response, extra in (("accepted", {"previous_response": "declined"}), ("declined", {"reason": "Dinas luar"}),
                            ("delegated", {"delegate": Contact(name="Wakil", title="Asisten I")})):
        yield "invitation_responded", InvitationResponded(
            invitation_id=TRANSITION["commitment_id"], meeting_id=TRANSITION["commitment_id"], meeting=MEETING,
            region_code="52.05", role="kepala_bpkad", invitee=Contact(name="Kepala BPKAD Dompu"),
            response=response, responded_at=NOW, **extra)


    for response in ("accepted", "declined", "delegated"):  # what an invitee is told they can still change
        for template in ("meeting_rescheduled", "reminder_due"):
            yield template, EVENTS[template].model_copy(update={"response": response})


CASES = list(variants())


def visible(markup: str) -> str:
    return html.unescape(TAG.sub(" ", markup))


@pytest.fixture(scope="module")
def renderer():
    return Renderer(make_environment())


@pytest.mark.parametrize("template, event", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_no_rendered_notice_contains_an_internal_code(renderer, template, event):
    out = renderer.render(template, {"event": event, "recipient": ME, "region": "Kabupaten Dompu",
                                     "event_type": "x", "event_time": NOW})
    for part, text in (("subject", out.subject), ("text", out.text), ("html", visible(out.html))):
        words = " ".join(w for w in text.split() if not w.startswith(("http://", "https://")) and "@" not in w)
        assert not SNAKE_CASE.findall(words), (part, SNAKE_CASE.findall(words))
        assert not ENGLISH.findall(words), (part, ENGLISH.findall(words))


@pytest.mark.parametrize("template", sorted(EVENTS))
def test_every_notice_is_an_official_letter(renderer, template):
    out = renderer.render(template, {"event": EVENTS[template], "recipient": ME, "region": "Kabupaten Dompu",
                                     "event_type": "x", "event_time": NOW})
    for text in (out.text, visible(out.html)):
        assert "PEMERINTAH PROVINSI NUSA TENGGARA BARAT" in text
        assert "Yth. Sekretaris Daerah" in text and "Dengan hormat," in text
        assert "Sekretaris Daerah Provinsi Nusa Tenggara Barat" in text and "Narahubung:" in text
        assert re.search(r"telepon \(0370\) \d", text)


def test_facts_are_right():
    renderer = Renderer(make_environment())
    ctx = {"recipient": ME, "region": "Kabupaten Dompu", "event_type": "x", "event_time": NOW}
    first = renderer.render("commitment_submitted", ctx | {"event": EVENTS["commitment_submitted"]})
    assert "revisi" not in first.text and "penyampaian ke-" not in first.text
    again = renderer.render("commitment_submitted", ctx | {"event": CASES[len(EVENTS)][1]})
    assert "penyampaian ke-3 setelah perbaikan" in again.text and "APBD Perubahan" in again.text
    returned = CommitmentOverdue(commitment_id=TRANSITION["commitment_id"], region_code="52.05", fiscal_year=2026,
                                 deadline=NOW, status="returned")
    out = renderer.render("commitment_overdue", ctx | {"event": returned})
    assert "dikembalikan untuk perbaikan dan belum disampaikan kembali" in out.text
    invitation = renderer.render("invitation_issued", ctx | {"event": EVENTS["invitation_issued"]})
    assert re.search(r"Nomor   : 005/[0-9A-F]{6}/Setda-NTB/XII/2026", invitation.text)
    assert "Perihal : Undangan Rapat Koordinasi" in invitation.text and "Mataram, Selasa, 1 Desember 2026" in invitation.text
    declined = next(e for t, e in CASES if t == "invitation_responded" and e.response == "declined")
    out = renderer.render("invitation_responded", ctx | {"event": declined})
    assert "Kepala BPKAD Dompu, Kabupaten Dompu, menyatakan tidak dapat hadir dalam" in out.text


def test_notices_link_to_the_page_where_their_reader_acts():
    renderer = Renderer(make_environment(pages_base_url="https://rakor.ntbprov.go.id"))
    ctx = {"recipient": ME, "region": "Kabupaten Dompu", "event_type": "x", "event_time": NOW}
    submitted = EVENTS["commitment_submitted"]
    out = renderer.render("commitment_submitted", ctx | {"event": submitted})
    link = f"https://rakor.ntbprov.go.id/tinjauan/{submitted.commitment_id}"
    assert link in out.text and f'href="{link}"' in out.html
    for template in ("commitment_returned", "commitment_requested", "deadline_approaching", "deadline_extended"):
        out = renderer.render(template, ctx | {"event": EVENTS[template]})
        assert "https://rakor.ntbprov.go.id/komitmen" in out.text, template
    out = renderer.render("invitation_issued", ctx | {"event": EVENTS["invitation_issued"]})
    assert EVENTS["invitation_issued"].rsvp_url in out.text
