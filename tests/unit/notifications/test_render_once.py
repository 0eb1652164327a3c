"""Rendering once per event (rendering.render_each) gives exactly the bytes of a render per recipient."""

from __future__ import annotations

import os

import jinja2
import pytest
from hypothesis import given, settings, strategies as st

from services.notifications.domain import Recipient
from services.notifications.rendering import Renderer, TemplateFailure, _Once, make_environment, render_each

from .test_templates import EVENTS

# CI runs a bounded number of examples; NTB_HYPOTHESIS_PROFILE=long runs many more.
EXAMPLES = {"ci": 30, "long": 500}[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")]
PROFILE = settings(max_examples=EXAMPLES, deadline=None)

# Names and titles as people type them, and hostile ones: markup, quotes, ampersands, braces,
# Jinja syntax, line breaks, private-use characters like the markers, lone surrogates, empty.
text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "Drs. H. Contoh", "Sekretaris Daerah", "<b>&amp;</b>", '"Kepala" & \'Wakil\'',
                     "{{ recipient.name }}", "{% raw %}", "Baris\nbaru", "\ue000n\ue001", "\ud800", "Ⅻ ½ ²"]),
)
people = st.lists(st.builds(lambda i, name, title: Recipient(recipient_id=f"r{i}", name=name, title=title,
                                                             role="x", email="a@b.go.id"),
                            st.integers(0, 99), text, text), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(make_environment())


def per_recipient(renderer: Renderer, template: str, context: dict, person: Recipient) -> object:
    try:
        return renderer.render(template, {**context, "recipient": person})
    except TemplateFailure as exc:
        return ("failure", str(exc))


def outcome(value: object) -> object:
    return ("failure", str(value)) if isinstance(value, TemplateFailure) else value


@pytest.mark.parametrize("template", sorted(EVENTS))
@PROFILE
@given(recipients=people)
def test_render_each_equals_a_render_per_recipient(renderer, template, recipients):
    context = {"event": EVENTS[template], "region": "Kabupaten Dompu", "event_type": "x"}
    once = render_each(renderer, template, context, recipients)
    assert [outcome(o) for o in once] == [per_recipient(renderer, template, context, p) for p in recipients]


def test_every_shipped_template_renders_once_per_event(renderer):
    """The shipped templates use only plain recipient.name/title and take the fast path, except the
    overdue notice: it links a region's reader to its commitment page and the province's to the
    dashboard (recipient.region_code), so it renders per recipient; it goes out once per deadline."""
    once = _Once(renderer.environment)
    assert {t for t in EVENTS if not once.eligible(t)} == {"commitment_overdue"}


@pytest.mark.parametrize("source", [
    "{{ recipient.name|upper }}", "{% if recipient.title == 'x' %}y{% endif %}", "{{ recipient.email }}",
    "{{ recipient }}", "{{ recipient['name'] }}", "{% set r = recipient %}{{ r.name }}",
])
def test_any_other_use_of_the_recipient_renders_per_recipient(tmp_path, source):
    """An operator's template that filters, compares or reads another field falls back to a render per recipient,
    and still gives each recipient's own text."""
    (tmp_path / "custom.txt.j2").write_text("{% block subject %}S{% endblock %}{% block body %}" + source +
                                            "{% endblock %}")
    (tmp_path / "custom.html.j2").write_text("<html>" + source + "</html>")
    renderer = Renderer(make_environment(str(tmp_path)))
    assert not _Once(renderer.environment).eligible("custom")
    a = Recipient(recipient_id="a", name="Ani", title="x", role="x", email="a@b.go.id")
    b = Recipient(recipient_id="b", name="Budi", title="", role="x", email="b@b.go.id")
    context = {"event": EVENTS["commitment_submitted"], "region": "r", "event_type": "x"}
    assert [outcome(o) for o in render_each(renderer, "custom", context, [a, b])] == [
        per_recipient(renderer, "custom", context, p) for p in (a, b)]


def test_a_broken_template_fails_for_every_recipient(tmp_path):
    (tmp_path / "broken.txt.j2").write_text("{% block subject %}{{ nope }}{% endblock %}{% block body %}"
                                            "{{ recipient.name }}{% endblock %}")
    (tmp_path / "broken.html.j2").write_text("<html>{{ recipient.name }}</html>")
    renderer = Renderer(make_environment(str(tmp_path)))
    a = Recipient(recipient_id="a", name="Ani", title="", role="x", email="a@b.go.id")
    out = render_each(renderer, "broken", {"event": None, "region": "r", "event_type": "x"}, [a, a])
    assert all(isinstance(o, TemplateFailure) for o in out) and len(out) == 2
    assert jinja2  # the module's own error type is wrapped, never raised
