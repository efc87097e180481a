"""The whole desk in the site's language in real Chromium: the issue page in German
(long words) and Arabic (right to left) at 1280 and 375 px, every panel shown (variants,
approval, test send, edit). Nothing sticks out of its box or makes the page scroll
sideways; in Arabic the page itself reads right to left. Screenshots in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.preview import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW, SECRET
from tests.test_desk import AUDIENCE, EDITORS, listed
from tests.test_preview_polish import site_language

pytestmark = pytest.mark.slow  # a real browser: seconds a test

sync_api = require_chromium()

# Boxes whose text sticks out past their right or left edge (a long German word in a
# narrow column), not counting what scrolls or clips on purpose (frames, the text part).
STICKING_OUT = """() => [...document.querySelectorAll('main *')].filter(e => {
  const style = getComputedStyle(e);
  if (style.overflowX !== 'visible' || e.closest('pre, iframe, .inbox-row, select')) return false;
  return e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0;
}).map(e => e.tagName + '#' + e.id + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40))"""


@pytest.fixture
def desk(demo_project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppServer]:
    root = demo_project.root
    listed(root, *EDITORS)
    Roster(demo_project.store).import_subscribers(AUDIENCE, NOW)
    path = root / "schedules" / "weekly.toml"
    path.write_text(path.read_text("utf-8") + '\napproval = "required"\n', "utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    running = AppServer(lambda url: create_app(root, clock=lambda: scaffold.DEMO_AT), "desk")
    yield running
    running.stop()


@pytest.mark.parametrize("language", ["de", "ar"])
@pytest.mark.parametrize("width", [1280, 375])
def test_the_issue_page_in_the_site_language_fits(
    demo_project: Project, desk: AppServer, language: str, width: int
):
    site_language(demo_project.root, language)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(8000)
        page.goto(f"{desk.url}/schedules/weekly")
        page.frame_locator("#frame-desktop").locator("h1").first.wait_for()
        page.click(".other-moment summary")  # its picker, with the longest label, shown too
        top = {"x": 0, "y": 0, "width": width, "height": 1600}  # the head and the panels
        page.screenshot(path=str(ARTIFACTS / f"desk-words-{language}-{width}.png"), full_page=True, clip=top)
        direction = "rtl" if language == "ar" else "ltr"
        assert page.evaluate("getComputedStyle(document.body).direction") == direction
        assert page.locator("#approve").is_visible() and page.locator("#send-test").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # never sideways
        assert page.evaluate(STICKING_OUT) == []
