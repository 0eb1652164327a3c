"""Every e-mail and calendar built from hostile but accepted input parses cleanly, with exactly the
intended headers and properties (stdlib `email` parser; the independent `icalendar` package).

The inputs are what the edges accept (shared.contracts.text): the strategies draw from the same
characters an attacker would try (quotes, angle brackets, ';', ',', '\\', ':', '=', '&', non-ASCII,
emoji, combining marks, long values that must be folded) and keep only values the contract accepts,
so an accepted meeting, invitee or delegate is always deliverable.
`HYPOTHESIS_PROFILE=long` runs many more examples (see docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from services.notifications.channels import build_email
from services.notifications.deliveries import Delivery
from services.notifications.domain import Recipient, Rule, Target
from services.notifications.handlers import Routing, intent
from services.notifications.rendering import Renderer, make_environment
from services.notifications.settings import NotificationsSettings
from shared.contracts.common import Contact, MeetingInfo
from shared.contracts.invitations import InvitationIssued, MeetingCancelled
from shared.contracts.notifications import Channel
from shared.contracts.text import WebUrl, line, paragraph

HOSTILE = "\"'<>&;:,\\=/?#%+@!$()[]{}|^`~*-_. éñßøçİıÅ한글漢字ไทย🙂\u0301\u200d\u00a0\ufeffAbc019"
START = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
SETTINGS = NotificationsSettings(environment="development")
ROUTING = Routing.of([], Renderer(make_environment()), SETTINGS)
INVITATION_RULE = Rule(event="ntb.invitations.invitation.issued.v1", template="invitation_issued",
                       channels=(Channel.EMAIL,), invitee=True)
CANCEL_RULE = Rule(event="ntb.invitations.meeting.cancelled.v1", template="meeting_cancelled",
                   channels=(Channel.EMAIL,), meeting_invitees=True)
HEADERS = ["Message-ID", "Date", "From", "To", "Subject", "X-Notification-Id", "Traceparent", "Auto-Submitted", "MIME-Version",
           "Content-Type"]


def accepted(type_: object, strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    adapter = TypeAdapter(type_)

    def valid(value: str) -> bool:
        try:
            adapter.validate_python(value)
            return True
        except ValidationError:
            return False

    return strategy.filter(valid).map(adapter.validate_python)


def texts(type_: object, max_size: int, *, breaks: bool = False) -> st.SearchStrategy[str]:
    alphabet = st.sampled_from(HOSTILE + ("\n\r\t" if breaks else ""))
    return accepted(type_, st.one_of(st.text(alphabet, min_size=1, max_size=max_size),
                                     st.text(st.characters(codec="utf-8"), min_size=1, max_size=max_size)))


urls = accepted(WebUrl, st.builds(
    lambda host, path: f"https://{host}/{path}", st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
    st.text(st.sampled_from("abc019-._~%!$&()*+,;=:@/?#[]éñ🙂"), max_size=120)))
emails = st.from_regex(r"[a-z0-9]{1,10}([._+-][a-z0-9]{1,8}){0,2}@[a-z0-9]{1,10}\.go\.id", fullmatch=True)


@st.composite
def meetings(draw: st.DrawFn) -> MeetingInfo:
    return MeetingInfo(
        meeting_id=str(uuid.uuid4()), title=draw(texts(line(300), 300)), agenda=draw(texts(paragraph(5000), 600,
                                                                                          breaks=True)),
        starts_at=START, ends_at=START + timedelta(hours=3), venue=draw(st.none() | texts(line(500), 200)),
        online_url=draw(st.none() | urls), organizer=draw(texts(line(200), 200)))


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    return Contact(name=draw(texts(line(200), 200)), title=draw(texts(line(300, min_length=0), 120)),
                   email=draw(emails))


class Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def deliver(payload: object, rule: Rule, person: Recipient, event_type: str) -> tuple[Delivery, email.message.Message]:
    ctx = SimpleNamespace(event=SimpleNamespace(id=str(uuid.uuid4()), type=event_type, correlation_id=None, traceparent=None,
                                                time=START - timedelta(days=3)))
    row = intent(payload, ctx.event, Target(person, Channel.EMAIL, rule), None, ROUTING)
    assert row.status == "pending", row.reason  # accepted input is deliverable: no template error
    raw = build_email(dataclasses.replace(row, created_at=START - timedelta(days=3)), sender=SETTINGS.smtp_from,
                      domain=SETTINGS.message_id_domain)
    assert b"\r\n\r\n" in raw and all(len(line_) <= 998 for line_ in raw.split(b"\r\n"))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert not message.defects and all(not part.defects for part in message.walk())
    assert list(message.keys()) == HEADERS  # no header injected, none lost
    assert message["Subject"] == row.subject and "\n" not in str(message["Subject"])
    assert len(message["To"].addresses) == 1 and message["To"].addresses[0].addr_spec == person.email
    assert message["To"].addresses[0].display_name.split() == person.name.split()  # parsers fold runs of spaces
    return row, message


def html_of(message: email.message.Message) -> Html:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    parsed = Html()
    parsed.feed(part.get_content())
    return parsed


def calendar_of(message: email.message.Message) -> icalendar.Component:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    raw = part.get_payload(decode=True)
    assert all(len(line_) <= 75 for line_ in raw.split(b"\r\n")), "content lines are folded at 75 octets"
    calendar = icalendar.Calendar.from_ical(raw)
    assert not calendar.errors if hasattr(calendar, "errors") else True
    return calendar


def check_event(calendar: icalendar.Component, meeting: MeetingInfo, person: Recipient, *, cancelled: bool,
                description: str) -> None:
    (event,) = calendar.walk("VEVENT")
    expected = {"UID", "SEQUENCE", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "DESCRIPTION", "ORGANIZER",
                "ATTENDEE", "STATUS", "TRANSP"} | ({"LOCATION"} if meeting.venue else set()) | (
                    {"URL"} if meeting.online_url else set())
    assert set(event.keys()) == expected
    assert set(calendar.keys()) == {"PRODID", "VERSION", "CALSCALE", "METHOD"}
    assert str(calendar["METHOD"]) == ("CANCEL" if cancelled else "REQUEST")
    assert str(event["SUMMARY"]) == meeting.title
    assert str(event["DESCRIPTION"]) == description
    if meeting.venue:
        assert str(event["LOCATION"]) == meeting.venue
    if meeting.online_url:
        assert str(event["URL"]) == meeting.online_url
    assert event["ATTENDEE"].params["CN"] == person.name.replace("\\", "/")  # see ics._param
    assert str(event["ATTENDEE"]) == f"mailto:{person.email}"
    assert event["ORGANIZER"].params["CN"] == meeting.organizer.replace("\\", "/")
    assert event.decoded("DTSTART") == START and event.decoded("DTEND") == START + timedelta(hours=3)


PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.filter_too_much])


@PROFILE
@given(meeting=meetings(), invitee=contacts())
def test_an_invitation_from_hostile_accepted_input_is_one_clean_mail_and_calendar(meeting, invitee):
    invitation_id = uuid.uuid4()
    payload = InvitationIssued(
        invitation_id=invitation_id, meeting_id=uuid.UUID(meeting.meeting_id), meeting=meeting, role="sekda",
        invitee=invitee, rsvp_url=f"https://rakor.ntbprov.go.id/rsvp/{invitation_id.hex}.1.sig",
        rsvp_expires_at=START, calendar_uid=f"{meeting.meeting_id}@rakor", calendar_sequence=0)
    person = Recipient(recipient_id=f"invitee:{invitation_id}", name=invitee.name, title=invitee.title,
                       role="invitee", email=invitee.email, invitation_id=str(invitation_id))
    _, message = deliver(payload, INVITATION_RULE, person, INVITATION_RULE.event)
    html = html_of(message)
    assert set(html.tags) <= {"html", "head", "meta", "title", "body", "p", "br", "table", "tr", "td", "b", "a", "span",
                              "hr"}
    assert all(h.startswith("https://") for h in html.hrefs) and payload.rsvp_url in html.hrefs
    if meeting.online_url:
        assert meeting.online_url in html.hrefs
    assert meeting.title in "".join(html.text)  # shown as written, never as markup
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    assert meeting.organizer in text
    check_event(calendar_of(message), meeting, person, cancelled=False,
                description=(meeting.agenda + f"\n\nKonfirmasi kehadiran: {payload.rsvp_url}").strip())


@PROFILE
@given(meeting=meetings(), invitee=contacts(), reason=texts(paragraph(1000), 300, breaks=True))
def test_a_cancellation_from_hostile_accepted_input_is_one_clean_mail_and_calendar(meeting, invitee, reason):
    payload = MeetingCancelled(meeting=meeting, meeting_id=uuid.UUID(meeting.meeting_id), reason=reason,
                               calendar_uid=f"{meeting.meeting_id}@rakor", calendar_sequence=2)
    person = Recipient(recipient_id="invitee:x", name=invitee.name, title=invitee.title, role="invitee",
                       email=invitee.email, invitation_id=str(uuid.uuid4()))
    _, message = deliver(payload, CANCEL_RULE, person, CANCEL_RULE.event)
    check_event(calendar_of(message), meeting, person, cancelled=True, description=meeting.agenda.strip())


@pytest.mark.parametrize("value", ["Rapat\r\nX-Injected: 1", "Rapat\nATTENDEE:mailto:x@evil.example", "a\u2028b",
                                   "Rapat\x00", "Rapat\x1b[31m", "\u202eRapat"])
def test_what_would_inject_is_refused_at_the_contract(value):
    """The single-line fields that reach headers and calendar lines refuse breaks and controls outright."""
    with pytest.raises(ValidationError):
        MeetingInfo(meeting_id="m", title=value, starts_at=START, ends_at=START, organizer="O")
    with pytest.raises(ValidationError):
        Contact(name=value)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<script>",
                                 "https://x.example/\r\nATTENDEE:mailto:a@b", "https://x.example/\"onmouseover=",
                                 "vbscript:x", "//x.example", "https://", "ftp://x.example"])
def test_only_http_links_are_accepted(url):
    with pytest.raises(ValidationError):
        TypeAdapter(WebUrl).validate_python(url)
