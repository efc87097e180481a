"""Issue 19: the public pages (signup, confirm, preferences, unsubscribe, archive, errors)
in the site's language, through the mails' catalogues: every word the templates and the
handlers print is in every catalogue, and a German or Arabic site shows no English."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from starlette.exceptions import StarletteDeprecationWarning

from newsletter.core import config
from newsletter.core.languages import SUPPORTED
from newsletter.core.translations import catalogue, translations
from newsletter.web import public
from newsletter.web.public import create_app
from newsletter.web.signup import Offer, embed_snippet
from tests.conftest import NOW

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

OTHERS = [lang for lang in SUPPORTED if lang != "en"]
WEB = Path(public.__file__).parent
# What the English pages say: none of it may be left on a translated page.
ENGLISH = (
    "Subscribe", "Email address", "Topics", "newsletter by email",
    "We send a mail", "I agree", "Your newsletter preferences", "Pause", "Save", "Unsubscribe",
    "Past issues", "Go to", "Page not found", "There is no page",
)  # fmt: skip


def page_messages() -> set[str]:
    """{% trans %} blocks and _("...") of the public templates."""
    found = extract_from_dir(
        str(WEB / "templates" / "public"),
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": {"trimmed": "true", "extensions": "jinja2.ext.i18n"}},
    )
    return {m if isinstance(m, str) else m[0] for _, _, m, _, _ in found}


def marked_messages() -> set[str]:
    """The N_("...") (and gettext) strings of the public handlers and the default consent."""
    files = [*sorted(WEB.glob("*.py")), Path(config.__file__)]
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = [m for f in files for _, m, _, _ in extract_from_file("python", str(f), keywords=keywords)]
    return {m if isinstance(m, str) else m[0] for m in found}


def test_the_extraction_finds_the_pages_words():
    pages, marked = page_messages(), marked_messages()
    assert {"Subscribe", "Go to %(site)s", "Newsletters", "%(site)s: past issues"} <= pages
    assert {"Check your inbox", "That does not look like an email address.", "Page not found"} <= marked
    assert config.DEFAULT_CONSENT in marked and len(pages | marked) > 70


@pytest.mark.parametrize("language", OTHERS)
def test_every_word_the_public_pages_print_is_translated(language: str):
    with catalogue(language).open("rb") as f:
        po = read_po(f, locale=language)
    translated = {(m.id if isinstance(m.id, str) else m.id[0]): m.string for m in po if m.id and m.string}
    missing = (page_messages() | marked_messages()) - set(translated)
    assert not missing, f"{language}: {sorted(missing)}"
    for message, said in translated.items():  # a translation keeps every placeholder and tag
        if isinstance(said, str):
            assert sorted(re.findall(r"%\(\w+\)s|<[^>]+>", message)) == sorted(
                re.findall(r"%\(\w+\)s|<[^>]+>", said)
            ), (language, message)


@pytest.fixture
def site_in(project_dir: Path) -> Iterator[object]:
    clients: list[TestClient] = []

    def open_in(language: str) -> TestClient:
        env = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789", "NEWSLETTER_SITE_LANGUAGE": language}
        client = TestClient(create_app(project_dir, env, clock=lambda: NOW))
        clients.append(client.__enter__())
        return client

    yield open_in
    for client in clients:
        client.__exit__(None, None, None)


def visible(html: str) -> str:
    """The page's words: no tags, no attribute values, no style."""
    return re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S)


def no_english(text: str) -> list[str]:
    return [phrase for phrase in ENGLISH if re.search(rf"\b{re.escape(phrase)}\b", text)]


@pytest.mark.parametrize(
    ("language", "words"),
    [("de", ("Abonnieren", "E-Mail-Adresse", "Newsletter von Mind &amp; Body per E-Mail")),
     ("ar", ("اشترك", "عنوان البريد الإلكتروني", "أوافق على"))],
)  # fmt: skip
def test_the_signup_page_speaks_the_site_language(site_in, language: str, words: tuple[str, ...]):
    page = site_in(language).get("/subscribe")
    assert page.status_code == 200
    assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}">' in page.text
    for word in words:
        assert word in page.text
    assert no_english(visible(page.text)) == []


@pytest.mark.parametrize("language", ["de", "ar", "ja"])
def test_the_other_pages_speak_it_too(site_in, language: str):
    client = site_in(language)
    for url, status in [("/", 200), ("/issues/", 200), ("/nowhere", 404), ("/unsubscribe", 400),
                        ("/preferences?token=x", 400), ("/confirm?token=x", 400)]:  # fmt: skip
        page = client.get(url)
        assert page.status_code == status, url
        assert no_english(visible(page.text)) == [], (url, no_english(visible(page.text)))
    feed = client.get("/issues/feed.atom").text
    assert translations(language).gettext("%(site)s: past issues") % {"site": "Mind &amp; Body"} in feed


def test_json_answers_and_the_embed_snippet_are_translated_too(site_in):
    answer = site_in("de").post("/subscribe", json={"email": "ann@example.org"})
    assert answer.json()["message"] == "Bitte klicken Sie noch einmal auf „Abonnieren“, um fortzufahren."
    snippet = embed_snippet("https://example.org/n", Offer((), ()), "de")
    assert ">Abonnieren</button>" in snippet and "E-Mail" in snippet and "Subscribe" not in snippet


def test_english_is_the_default(site_in):
    page = site_in("en").get("/subscribe").text
    assert "Email address" in page and ">Subscribe</button>" in page and "I agree to receive" in page
