"""The editor's desk in real Chromium: switch variants, send a test to aiosmtpd.
Screenshots of the desk at 1280 and 375 px land in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.preview import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW, SECRET, SMTPServer
from tests.test_desk import AUDIENCE, EDITORS, listed

pytestmark = pytest.mark.slow  # a real browser: seconds a test

sync_api = require_chromium()


@pytest.fixture
def desk_server(
    demo_project: Project, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppServer]:
    root = demo_project.root
    listed(root, *EDITORS)
    Roster(demo_project.store).import_subscribers(AUDIENCE, NOW)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    monkeypatch.setenv("NEWSLETTER_EMAIL_TRANSPORT", smtp_server.url)
    running = AppServer(lambda url: create_app(root, clock=lambda: scaffold.DEMO_AT), "desk")
    yield running
    running.stop()


def test_switch_variants_and_send_a_test(desk_server: AppServer, smtp_server: SMTPServer, tmp_path: Path):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(8000)
        page.goto(f"{desk_server.url}/schedules/weekly")
        assert page.locator("#variants .variant").count() >= 2
        page.locator("#summary").screenshot(path=str(ARTIFACTS / "desk-1280.png"))
        page.locator("#variants .variant", has_text="Sleep & recovery").first.click()
        page.wait_for_url("**variant=**")
        assert page.locator("#variants li.current").inner_text().startswith("Sleep & recovery")
        frame = page.frame_locator("#frame-desktop")
        shown = frame.locator("body").inner_text().upper()
        assert "SLEEP & RECOVERY" in shown and "MOVEMENT & FITNESS" not in shown
        page.select_option("#test-to", EDITORS[0])
        page.fill("#test-editor", "Ann Editor")
        page.click("#send-test")
        assert "Test sent to editor@site.org." in page.locator("#outcome").inner_text()
        [received] = smtp_server.handler.messages
        assert received.recipients == [EDITORS[0]]
        assert b"Subject: [TEST] " in received.data
        phone = browser.new_page(viewport={"width": 375, "height": 812})
        phone.goto(f"{desk_server.url}/schedules/weekly")
        phone.locator("#summary").screenshot(path=str(ARTIFACTS / "desk-375.png"))
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375
