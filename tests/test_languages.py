"""Issue 19: the mails in the reader's language: catalogues, plural forms, dates,
direction, reading time per script, the preheader and the size of a full issue."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from newsletter.audience.notices import cadence, in_words
from newsletter.core.languages import SUPPORTED
from newsletter.core.resources import bundled
from newsletter.core.translations import catalogue, translations
from newsletter.digest.enrich import minutes_to_read
from newsletter.digest.render import Renderer, default_templates
from tests.test_render import LINKS, SETTINGS, T0, digest, schedule

SUMMARY = (  # as in test_render's size test
    "A growing body of research suggests that small daily habits shape how we feel far "
    "more than occasional big efforts; we look at what the studies found and what to try."
)
OTHERS = [lang for lang in SUPPORTED if lang != "en"]


def template_messages() -> set[str]:
    found = extract_from_dir(
        str(bundled("templates")),
        method_map=[("**.j2", "jinja2.ext:babel_extract")],
        options_map={"**.j2": {"trimmed": "true", "extensions": "jinja2.ext.i18n"}},
    )
    return {m if isinstance(m, str) else m[0] for _, _, m, _, _ in found}


@pytest.mark.parametrize("language", OTHERS)
def test_every_word_the_templates_print_is_translated(language: str):
    with catalogue(language).open("rb") as f:
        po = read_po(f, locale=language)
    translated = {(m.id if isinstance(m.id, str) else m.id[0]) for m in po if m.id and m.string}
    missing = template_messages() - translated
    assert not missing, f"{language}: {sorted(missing)}"
    for message in po:
        if isinstance(message.id, tuple):
            forms = list(message.string or ())
            assert len(forms) == po.num_plurals and all(forms), (language, message.id)


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [("ru", 1, "1 новая статья"), ("ru", 3, "3 новые статьи"), ("ru", 11, "11 новых статей"),
     ("ar", 2, "مقالان جديدان"), ("ar", 11, "11 مقالًا جديدًا"), ("fr", 1, "1 nouvel article"),
     ("ja", 5, "新着記事 5 本")],
)  # fmt: skip
def test_plural_forms_follow_the_language(language: str, count: int, expected: str):
    words = translations(language)
    assert (
        words.ngettext("%(count)s new article", "%(count)s new articles", count) % {"count": count}
        == expected
    )


@pytest.mark.parametrize(
    ("language", "words", "date"),
    [("de", "In dieser Ausgabe", "Montag, 23. November 2026"), ("ja", "今号の内容", "2026年11月23日月曜日"),
     ("ar", "في هذا العدد", "الاثنين، 23 نوفمبر 2026"), ("en", "In this issue", "Monday 23 November 2026")],
)  # fmt: skip
def test_the_issue_speaks_the_schedule_language(language: str, words: str, date: str):
    issue = Renderer([default_templates()]).render(digest(sched=schedule(language=language)), SETTINGS, LINKS)
    assert words in issue.html and date in issue.html and date in issue.text
    assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}"' in issue.html
    if language == "ar":
        assert "direction:rtl" in issue.html and "text-align:right" in issue.html


def test_reading_time_counts_cjk_in_characters():
    assert minutes_to_read("word " * 460) == 2  # 230 words a minute
    assert minutes_to_read("日本語の文章です。" * 100) == 2  # 800 characters at 450 a minute
    assert minutes_to_read("한국어" * 400) == 3  # 1200 hangul at 500 a minute
    # before issue 19 a CJK article with no spaces was always "1 min read"
    assert minutes_to_read("中文" * 2000) == 9


def test_welcome_cadence_and_lifetime_in_words():
    weekly = schedule(cron="0 8 * * mon")
    assert cadence(weekly, "en") == "every Monday at 08:00"
    assert cadence(weekly, "de") == "jeden Montag um 08:00"
    assert cadence(schedule(cron="30 7 * * *"), "fr") == "tous les jours à 07:30"
    assert cadence(schedule(cron="0 8 1 * *"), "en") == ""  # monthly: no words made up
    assert in_words(timedelta(days=7), "ru") == "7 дней" and in_words(timedelta(hours=1), "en") == "1 hour"


def titled(n: int) -> list[str]:
    return [f"Title number {i}" for i in range(n)]


def test_default_preheader_names_the_next_titles_not_the_subjects():
    d = digest()
    titles = iter(titled(len(d.articles)))
    d = replace(
        d,
        sections=tuple(
            replace(s, articles=tuple(replace(a, title=next(titles)) for a in s.articles)) for s in d.sections
        ),
    )
    issue = Renderer([default_templates()]).render(d, SETTINGS, LINKS)
    assert issue.subject == "Weekly: Title number 0"
    assert issue.preheader == "Title number 1 · Title number 2 · Title number 3"
    hidden = re.search(r'<div style="display:none;[^"]*">', issue.html)
    assert hidden and "color:#fff" not in hidden.group(0)  # SpamAssassin's HTML_FONT_LOW_CONTRAST
    assert "\u034f\u200c\u00a0" * 10 in issue.html


def test_preheader_key_is_a_template():
    sched = schedule(preheader="{{ count }} new: {{ titles }} <b>")
    issue = Renderer([default_templates()]).render(digest(sched=sched), SETTINGS, LINKS)
    assert issue.preheader == "8 new: A calm title <b>" or issue.preheader.startswith("8 new:")
    assert "<b>" not in issue.html.split("display:none", 1)[1][:200]


@dataclass(frozen=True)
class Image:
    url: str
    alt: str
    width: int
    height: int


def test_thirty_articles_with_images_and_three_related_stay_under_90_kb():
    d = digest(per_category=8, summary=SUMMARY)
    d = replace(d, sections=tuple(replace(s, articles=tuple(
        _with_image(a, Image(f"https://cdn.example.org/img/{a.id}/photo-1200x800.jpg", "A photo", 1200, 800))
        for a in s.articles)) for s in d.sections))  # fmt: skip
    issue = Renderer([default_templates()]).render(d, SETTINGS, LINKS)
    assert len(d.articles) == 32
    assert issue.html.count("<img") == 32
    assert 'width="528"' in issue.html and 'height="352"' in issue.html  # the lead: the column, scaled
    assert 'alt="A photo"' in issue.html
    assert issue.html_size < 90 * 1024, issue.html_size


def _with_image(article, image):
    """The images stage adds `image` to a card; until then a subclass carries it."""
    cls = type("ImagedArticle", (type(article),), {"__annotations__": {}})
    made = cls(**{f: getattr(article, f) for f in article.__dataclass_fields__})
    object.__setattr__(made, "image", image)
    return made


def test_welcome_says_when_issues_arrive_and_links_the_archive():
    from email import message_from_bytes, policy

    from newsletter.audience.notices import Links as NoticeLinks
    from newsletter.audience.notices import welcome

    settings = SETTINGS.model_copy(update={"site": SETTINGS.site.model_copy(update={"language": "de"})})
    sent = welcome(
        Renderer([default_templates()]),
        settings,
        "ann@example.org",
        "Ann <b>",
        [schedule(title="Wochenpost", cron="0 8 * * mon")],
        NoticeLinks(
            "https://example.org/newsletter/preferences?t=1", "https://example.org/newsletter/unsubscribe?t=1"
        ),
        T0,
        "<1@example.org>",
    )
    mail = message_from_bytes(sent.data, policy=policy.default)
    assert mail["Subject"] == "Willkommen bei Mind & Body"
    plain, rich = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and rich is not None
    text, html = plain.get_content(), rich.get_content()
    assert "Wochenpost: jeden Montag um 08:00" in text and "jeden Montag um 08:00" in html
    assert "https://example.org/newsletter/issues/" in text
    assert '<a href="https://example.org/newsletter/issues/"' in html and "Ann &lt;b&gt;" in html
    assert '<html lang="de" dir="ltr"' in html
