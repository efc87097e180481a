"""Issue 20 in real Chromium: approve in the preview, then the daemon's due logic with a
fixed clock sends exactly that issue once, to aiosmtpd on 127.0.0.1; the frames' light/dark
switch; the inbox row cut as a phone cuts it. Screenshots of the issue page at 1280 and
375 px, light and dark, and in Arabic, land in tests/artifacts/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy

import pytest

from newsletter import scaffold
from newsletter.delivery import due_sends
from newsletter.project import Project
from newsletter.storage.approvals import Approvals
from newsletter.storage.issues import Issues
from newsletter.web.preview import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW, SMTPServer
from tests.test_approval import FIRE, SHORT, ready, root, sender  # noqa: F401 (fixtures)
from tests.test_preview_polish import site_language
from tests.test_scheduler import GRACE, SECRET, recipients

__all__ = ["ready", "root", "sender"]  # the fixtures, shared with test_approval

pytestmark = pytest.mark.slow  # a real browser: seconds a test

sync_api = require_chromium()
DARK_PAGE = "rgb(17, 19, 21)"  # [theme] dark_page, #111315: the body in dark mode


@pytest.fixture
def approval_desk(ready: list[str], sender: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppServer]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    running = AppServer(lambda url: create_app(sender.root, clock=lambda: NOW), "desk")
    yield running
    running.stop()


def test_approved_in_the_preview_the_daemon_sends_that_issue_once(
    approval_desk: AppServer, ready: list[str], sender: Project, smtp_server: SMTPServer
):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(8000)
        page.goto(f"{approval_desk.url}/schedules/daily?at={NOW.isoformat().replace('+', '%2B')}")
        assert page.locator("#waiting").is_visible()
        subject = page.locator("#inbox-subject").inner_text()
        page.fill("#approve-editor", "Ada Lovelace")
        page.click("#approve")
        assert "Approved by Ada Lovelace" in page.locator("main").inner_text()
    [issue] = Issues(sender.store).issues("daily")
    approved = Approvals(sender.store).approval(issue.id)
    assert approved is not None and approved.editor == "Ada Lovelace" and issue.period.end == FIRE
    # The daemon's rounds with a fixed clock: before its time nothing, at it one send, then nothing.
    assert due_sends.catch_up(sender, FIRE - timedelta(minutes=1), SHORT, smtp_server.url) == []
    assert smtp_server.handler.messages == []
    [sent] = due_sends.catch_up(sender, FIRE + timedelta(minutes=1), GRACE, smtp_server.url)
    assert sent is not None and sent.outcome == "sent"
    stop = threading.Event()
    assert (
        due_sends.approval_rounds(sender.root, GRACE, smtp_server.url, stop, FIRE + timedelta(minutes=5))
        == []
    )
    [again] = due_sends.catch_up(sender, FIRE + timedelta(minutes=9), GRACE, smtp_server.url)
    assert again is not None and again.outcome == "already sent"
    assert recipients(smtp_server) == ready  # one message per reader, once
    [went] = Issues(sender.store).issues("daily")
    assert (went.id, went.status) == (issue.id, "sent")
    for message in smtp_server.handler.messages:
        assert str(message_from_bytes(message.data, policy=policy.default)["Subject"]) == subject


@pytest.fixture
def demo_desk(demo_project: Project) -> Iterator[AppServer]:
    running = AppServer(lambda url: create_app(demo_project.root, clock=lambda: scaffold.DEMO_AT), "desk")
    yield running
    running.stop()


def body_background(page: object, frame: str) -> str:
    body = page.frame_locator(frame).locator("body")  # type: ignore[attr-defined]
    return str(body.evaluate("b => getComputedStyle(b).backgroundColor"))


def test_the_dark_switch_applies_the_emails_dark_styles_in_both_frames(demo_desk: AppServer):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="light")
        page.set_default_timeout(8000)
        page.goto(f"{demo_desk.url}/schedules/weekly")
        assert body_background(page, "#frame-desktop") != DARK_PAGE
        page.click("#scheme-dark")
        page.wait_for_url("**scheme=dark**")
        page.frame_locator("#frame-mobile").locator("h1").first.wait_for()
        assert body_background(page, "#frame-desktop") == DARK_PAGE
        assert body_background(page, "#frame-mobile") == DARK_PAGE
        assert page.locator("#scheme-dark").get_attribute("aria-current") == "true"
        page.screenshot(path=str(ARTIFACTS / "desk-issue-1280-dark.png"))
        page.click("#scheme-light")  # a reader whose system is dark still sees the light email
        page.wait_for_url("**scheme=light**")
        page.emulate_media(color_scheme="dark")
        page.reload()
        page.frame_locator("#frame-desktop").locator("h1").first.wait_for()
        assert body_background(page, "#frame-desktop") != DARK_PAGE
        page.emulate_media(color_scheme="light")
        page.screenshot(path=str(ARTIFACTS / "desk-issue-1280-light.png"))


def frames_shot(page: object, name: str) -> None:
    """The viewport from the inbox row down: the switch and the top of the frames."""
    page.evaluate("scrollTo(0, document.getElementById('inbox').offsetTop - 70)")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / name))  # type: ignore[attr-defined]


def test_the_inbox_row_is_cut_as_a_phone_cuts_it(demo_desk: AppServer):
    with chromium() as browser:
        phone = browser.new_page(viewport={"width": 375, "height": 812})
        phone.set_default_timeout(8000)
        phone.goto(f"{demo_desk.url}/schedules/weekly")
        subject = phone.locator("#inbox-subject")
        assert subject.evaluate("e => e.scrollWidth > e.clientWidth")  # the demo's subject is long
        assert subject.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
        preheader = phone.locator("#inbox-preheader")
        lines = preheader.evaluate(
            "e => e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)"
        )
        assert round(lines) == 2 and preheader.evaluate("e => e.scrollHeight > e.clientHeight")
        assert phone.locator("#inbox-sender").inner_text() == "Mind & Body"
        assert (
            phone.evaluate("document.documentElement.scrollWidth") <= 375
        )  # the page never scrolls sideways
        phone.screenshot(path=str(ARTIFACTS / "desk-issue-375-light.png"))
        frames_shot(phone, "desk-issue-375-light-frames.png")
        phone.goto(f"{demo_desk.url}/schedules/weekly?scheme=dark")
        phone.frame_locator("#frame-mobile").locator("h1").first.wait_for()
        phone.screenshot(path=str(ARTIFACTS / "desk-issue-375-dark.png"))
        frames_shot(phone, "desk-issue-375-dark-frames.png")


def test_in_arabic_the_dates_and_the_inbox_read_right_to_left(demo_project: Project, demo_desk: AppServer):
    site_language(demo_project.root, "ar")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(8000)
        page.goto(f"{demo_desk.url}/schedules/weekly")
        picker = page.locator("#at")
        assert picker.get_attribute("dir") == "rtl"
        assert re.search(r"الاثنين، 23 نوفمبر 2026", picker.locator("option[selected]").inner_text())
        row = page.locator(".inbox-row")  # laid out as an Arabic phone lays it out: avatar at the right
        assert row.evaluate("e => getComputedStyle(e).direction") == "rtl"
        avatar, time = (page.locator(f".inbox-row {s}").bounding_box() for s in (".inbox-avatar", "time"))
        assert avatar is not None and time is not None and avatar["x"] > time["x"]
        assert page.frame_locator("#frame-desktop").locator("html").get_attribute("dir") == "rtl"
        page.screenshot(path=str(ARTIFACTS / "desk-issue-1280-ar.png"))
