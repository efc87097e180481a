from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import TemplateError
from newsletter.core.models import Digest, DigestArticle, Link, Period, Schedule, Section
from newsletter.digest.render import GMAIL_CLIP_BYTES, Links, Renderer, default_templates

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
INJECTION = "</mj-text><script>alert('x')</script>"
SETTINGS = Settings.model_validate(
    {
        "site": {
            "name": "Mind & Body",
            "base_url": "https://example.org",
            "timezone": "Europe/London",
            "postal_address": "1 Example Street, London",
        },
        "email": {"from": "Mind & Body <digest@example.org>"},
    }
)
LINKS = Links("https://example.org/newsletter/unsubscribe", "https://example.org/newsletter/issue.html")


def schedule(**changes) -> Schedule:
    base = dict(
        name="weekly",
        title="Weekly",
        cron="0 8 * * mon",
        timezone="Europe/London",
        categories=("A", "B", "C", "D"),
    )
    return Schedule(**{**base, **changes})


def digest(
    per_category: int = 2,
    title: str = "A calm title",
    summary: str = "A summary.",
    related: int = 3,
    sched: Schedule | None = None,
) -> Digest:
    sections = []
    for c, category in enumerate(["A", "B", "C", "D"]):
        articles = tuple(
            DigestArticle(
                id=c * 100 + i,
                title=title,
                url=f"https://example.org/{c}/{i}",
                published=T0,
                category=category,
                summary=summary,
                reading_minutes=4,
                related=tuple(
                    Link(f"Related article number {r} with a realistic title", f"https://example.org/r/{r}")
                    for r in range(related)
                ),
            )
            for i in range(per_category)
        )
        sections.append(Section(category, articles))
    return Digest(sched or schedule(), Period(T0 - timedelta(days=7), T0), T0, tuple(sections))


@pytest.fixture
def renderer() -> Renderer:
    return Renderer([default_templates()])


def test_untrusted_text_cannot_inject_markup(renderer: Renderer):
    unsafe = digest(title=INJECTION, summary=f"{INJECTION} <b>bold</b> & more")
    issue = renderer.render(unsafe, SETTINGS, LINKS)
    assert "<script" not in issue.html.lower()
    assert "&lt;/mj-text&gt;&lt;script&gt;alert(" in issue.html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in issue.html
    assert INJECTION in issue.text  # the text part shows it as it is: plain text


def test_thirty_articles_with_three_related_stay_under_gmail_clip(renderer: Renderer):
    summary = (
        "A growing body of research suggests that small daily habits shape how we feel far "
        "more than occasional big efforts; we look at what the studies found and what to try."
    )
    issue = renderer.render(digest(per_category=8, summary=summary), SETTINGS, LINKS)
    assert len(issue.digest.articles) == 32
    assert issue.html_size < 90 * 1024, issue.html_size
    assert issue.warnings == ()


def test_html_keeps_doctype_media_queries_and_color_scheme(renderer: Renderer):
    html = renderer.render(digest(), SETTINGS, LINKS).html
    assert html.lower().startswith("<!doctype html>")
    assert re.search(r"<style[^>]*>[^<]*@media", html)
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "fonts.googleapis" not in html
    assert 'style="' in html  # premailer inlined the CSS


def test_preheader_is_hidden_and_padded(renderer: Renderer):
    # Issue 19: the preheader names the titles the subject does not; every title here is
    # the lead's (in the subject), so it falls back to that one title.
    issue = renderer.render(digest(), SETTINGS, LINKS)
    assert issue.preheader == "A calm title"
    hidden = re.search(r'<div style="display:none;[^"]*">(.*?)</div>', issue.html, re.S)
    assert hidden
    assert hidden.group(1).startswith("A calm title")
    assert hidden.group(1).count("\u034f") >= 50  # padding keeps body text out of the preview


def test_subject_from_template_is_one_plain_line(renderer: Renderer):
    sched = schedule(subject="{{ title }}: {{ lead.title }}\r\nBcc: victim@example.org")
    issue = renderer.render(digest(title="Line\nbreak <b>", sched=sched), SETTINGS, LINKS)
    assert issue.subject == "Weekly: Line break <b> Bcc: victim@example.org"


def test_empty_issue_subject_falls_back_to_title(renderer: Renderer):
    empty = Digest(schedule(), Period(T0 - timedelta(days=7), T0), T0, ())
    issue = renderer.render(empty, SETTINGS, LINKS)
    assert issue.subject == "Weekly"
    assert "No new articles" in issue.text


def test_over_the_clip_size_warns(renderer: Renderer):
    issue = renderer.render(digest(per_category=40, summary="words " * 60), SETTINGS, LINKS)
    assert issue.html_size > GMAIL_CLIP_BYTES
    assert any("Gmail clips" in w for w in issue.warnings)


def broken(tmp_path: Path, name: str, text: str) -> Renderer:
    (tmp_path / name).write_text(text)
    return Renderer([tmp_path, default_templates()])


def test_template_syntax_error_names_template_and_line(tmp_path: Path):
    renderer = broken(tmp_path, "digest.mjml.j2", "<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>")
    with pytest.raises(TemplateError) as caught:
        renderer.render(digest(), SETTINGS, LINKS)
    assert caught.value.template == "digest.mjml.j2"
    assert caught.value.line == 3


def test_undefined_variable_names_template_and_line(tmp_path: Path):
    renderer = broken(tmp_path, "digest.txt.j2", "ok\n\n{{ nothing.here }}\n")
    with pytest.raises(TemplateError) as caught:
        renderer.render(digest(), SETTINGS, LINKS)
    assert (caught.value.template, caught.value.line) == ("digest.txt.j2", 3)
    assert "nothing" in str(caught.value)


def test_mjml_error_names_template(tmp_path: Path):
    renderer = broken(tmp_path, "digest.mjml.j2", "<mjml><mj-body><mj-section>")
    # The template check finds the unclosed tags before MJML does, and names the line (issue 21).
    with pytest.raises(TemplateError, match=r"digest.mjml.j2:1: <mjml> is never closed \(and 2 more\)"):
        renderer.render(digest(), SETTINGS, LINKS)


def test_project_templates_are_autoescaped_too(tmp_path: Path):
    renderer = broken(
        tmp_path,
        "digest.mjml.j2",
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        "{% for a in digest.articles %}{{ a.title }}{% endfor %}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>",
    )
    html = renderer.render(digest(title=INJECTION), SETTINGS, LINKS).html
    assert "<script" not in html
    assert "&lt;script&gt;" in html
