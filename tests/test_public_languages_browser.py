"""Issue 19: the signup form and the preference centre of a German and an Arabic site in
Debian's Chromium, at 375 and 1280 px: no sideways scroll, Arabic laid out right to left.
Screenshots land in tests/artifacts/ (public-LANG-PAGE-WIDTH.png)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.public import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW

pytestmark = pytest.mark.slow  # a real browser: seconds a test

require_chromium()
KEY = "test-secret-key-0123456789"


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    ("language", "button"), [("de", "Abonnieren"), ("ar", "اشترك")]
)  # fmt: skip
def test_signup_and_preferences_in_german_and_arabic(
    project: Project, browser: Any, language: str, button: str
):
    Roster(project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
    person = Roster(project.store).subscribers()[0]
    token = Tokens(KEY).purposes.make_preferences(person.id)
    environ = {"NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_SITE_LANGUAGE": language}
    server = AppServer(lambda url: create_app(project.root, environ), "public server")
    try:
        for name, path in (("signup", "/subscribe"), ("preferences", f"/preferences?token={token}")):
            for width in (375, 1280):
                shoot(browser, f"{server.url}{path}", f"public-{language}-{name}-{width}", width, language)
        page = browser.new_page()
        page.goto(f"{server.url}/subscribe")
        assert page.get_by_role("button", name=button).is_visible()
        page.close()
    finally:
        server.stop()


def shoot(browser: Any, url: str, name: str, width: int, language: str) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(url)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('h1')); "
                          "return [s.direction, s.textAlign]; })()")  # fmt: skip
    assert style[0] == ("rtl" if language == "ar" else "ltr"), name
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
