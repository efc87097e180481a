"""The "Edit this issue" panel in real Chromium (issue 20, item 3): pin an article, leave one
out, write an intro, and see the frames show it after the save. Screenshots of the panel at
1280 and 375 px land in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage.overrides import IssueOverrides
from newsletter.web.preview import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import SECRET

pytestmark = pytest.mark.slow  # a real browser: seconds a test

sync_api = require_chromium()
# The sticky bar would cover a panel's screenshot (the page's CSP refuses an added <style>).
UNSTUCK = "document.querySelector('.topbar').style.position = 'static'"


@pytest.fixture
def edit_server(demo_project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppServer]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    running = AppServer(lambda url: create_app(demo_project.root, clock=lambda: scaffold.DEMO_AT), "edit")
    yield running
    running.stop()


@pytest.mark.timeout(120)
def test_pin_exclude_and_intro_show_in_the_frames(edit_server: AppServer, demo_project: Project):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(10000)
        page.goto(f"{edit_server.url}/schedules/weekly")
        rows = page.locator("#edit .edit-row[data-article]")
        first, last = rows.first, rows.last
        dropped, pinned = first.get_attribute("data-article"), last.get_attribute("data-article")
        pinned_title = last.locator(".edit-title").inner_text()
        dropped_title = first.locator(".edit-title").inner_text().removeprefix("Lead").strip()
        desktop = page.frame_locator("#frame-desktop")
        assert dropped_title in desktop.locator("body").inner_text()
        page.check(f"#pin-{pinned}")
        page.check(f"#exclude-{dropped}")
        page.fill("#edit-intro", "A word from the *editor*: [the notes](https://example.org/more).")
        page.fill("#edit-editor", "Ann Editor")
        page.evaluate(UNSTUCK)
        page.locator("#edit").screenshot(path=str(ARTIFACTS / "edit-1280.png"))
        page.click("#edit-save")
        page.wait_for_url("**#edit")
        body = desktop.locator("body")
        body.get_by_text("A word from the").wait_for()
        shown = body.inner_text()
        assert dropped_title not in shown.split("In this issue")[-1]
        lead = desktop.locator(f"#a-{pinned}")
        assert lead.inner_text() == pinned_title
        assert shown.index("A word from the") < shown.index(pinned_title, shown.index("A word from the"))
        assert (
            desktop.get_by_role("link", name="the notes", exact=True).get_attribute("href")
            == "https://example.org/more"
        )
        mobile = page.frame_locator("#frame-mobile").locator("body")
        mobile.get_by_text("A word from the").wait_for()
        assert "Version 1" in page.locator("#edit-history").inner_text()
        assert page.locator(f'#edit .edit-row.excluded[data-article="{dropped}"]').count() == 1
        [saved] = IssueOverrides(demo_project.store).history("weekly", scaffold.DEMO_AT)
        assert saved.editor == "Ann Editor" and str(saved.overrides.pin) == pinned
        page.evaluate(UNSTUCK)
        page.locator("#edit").screenshot(path=str(ARTIFACTS / "edit-1280-saved.png"))
        phone = browser.new_page(viewport={"width": 375, "height": 812})
        phone.goto(f"{edit_server.url}/schedules/weekly")
        phone.evaluate(UNSTUCK)
        phone.locator("#edit").screenshot(path=str(ARTIFACTS / "edit-375.png"))
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
