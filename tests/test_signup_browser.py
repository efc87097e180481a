"""Signup end to end in a real browser: Playwright driving Debian's Chromium against the
public app (uvicorn on a loopback port), its mail going to a real aiosmtpd server on
127.0.0.1. Fill the form, get the confirmation mail, open its link, confirm, get the
welcome, change preferences, and the next `send` gives that reader the right variant.
Screenshots of the form, the confirm page and the preferences page, at 375 and 1280 px,
light and dark, land in tests/artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.types import ASGIApp

from newsletter import scaffold
from newsletter.audience.dispatch import for_serve
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.delivery.transports import Courier
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.public import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import SMTPServer

pytestmark = pytest.mark.slow  # a real browser: seconds a test

require_chromium()
WIDTHS = (375, 1280)
KEY = "test-secret-key-0123456789"
NAME = '<img src=x onerror="window.pwned=1">Ann'
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)


class Server(AppServer):
    """The public app, its URL in the settings (links in mails point at it), its mail to SMTP."""

    def __init__(self, root: Path, smtp_url: str) -> None:
        self.environ: dict[str, str] = {}

        def make_app(url: str) -> ASGIApp:
            self.environ = {"NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_WEB_PUBLIC_URL": url}
            return create_app(
                root,
                self.environ,
                courier_for=lambda _, env: Courier.for_url(smtp_url, env),
                dispatch_for=for_serve,
            )

        super().__init__(make_app, "public server")


@pytest.fixture
def root(demo_project: Project) -> Path:
    settings = demo_project.root / "newsletter.toml"
    settings.write_text(settings.read_text() + "\n[signup]\nmin_seconds = 0.5\n")
    return demo_project.root


@pytest.fixture
def server(root: Path, smtp_server: SMTPServer) -> Iterator[Server]:
    running = Server(root, smtp_server.url)
    yield running
    running.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def wait_for_mail(smtp: SMTPServer, address: str, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 10
    while len(smtp.handler.received_by(address)) < count:
        assert time.monotonic() < deadline, f"no mail {count} for {address}"
        time.sleep(0.05)
    return [message_from_bytes(m.data, policy=policy.default) for m in smtp.handler.received_by(address)]


def statuses(root: Path) -> list[str]:
    project = Project(root, environ={})
    try:
        return [s.status for s in Roster(project.store).subscribers()]
    finally:
        project.close()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def shoot(browser: Any, url: str, name: str) -> None:
    """The page at each width, light and dark; none of them may scroll sideways."""
    for width in WIDTHS:
        for scheme in ("light", "dark"):
            context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
            page = context.new_page()
            page.goto(url)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (
                f"{name} scrolls at {width}"
            )
            page.screenshot(path=str(ARTIFACTS / f"signup-{name}-{width}-{scheme}.png"), full_page=True)
            context.close()


def test_signup_confirm_welcome_preferences_and_the_next_send(
    browser: Any, server: Server, smtp_server: SMTPServer, root: Path
):
    shoot(browser, f"{server.url}/subscribe", "form")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(5000)

    page.goto(f"{server.url}/subscribe")
    page.fill("input[name=email]", "ann@example.org")
    page.fill("input[name=name]", NAME)
    page.uncheck("input[name=categories][value='Movement & fitness']")
    page.wait_for_timeout(600)  # [signup] min_seconds
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")

    [confirmation] = wait_for_mail(smtp_server, "ann@example.org", 1)
    assert confirmation["Subject"] == "Confirm your subscription to Mind & Body"
    found = re.search(r"http://127\.0\.0\.1:\d+/confirm\?token=\S+", text_of(confirmation))
    assert found is not None
    link = found.group(0)
    shoot(browser, link, "confirm")
    page.goto(link)
    assert statuses(root) == ["pending"]  # the GETs confirmed nobody
    page.click("text=Confirm my subscription")
    page.wait_for_selector("text=You are subscribed")

    welcome = wait_for_mail(smtp_server, "ann@example.org", 2)[1]
    assert welcome["Subject"] == "Welcome to Mind & Body"
    found = re.search(r"http://127\.0\.0\.1:\d+/preferences\?token=\S+", text_of(welcome))
    assert found is not None
    preferences = found.group(0)
    shoot(browser, preferences, "preferences")

    page.goto(preferences)
    assert page.evaluate("window.pwned") is None
    page.uncheck("input[name=schedules][value=sleep]")
    for category in ("Sleep & recovery", "Nutrition & everyday eating"):
        page.uncheck(f"input[name=categories][value='{category}']")
    page.click("button[value=save]")
    page.wait_for_selector("text=Saved")
    context.close()
    assert errors == []

    project = Project(root, environ=server.environ)
    try:
        [ann] = Roster(project.store).subscribers()
        assert (ann.status, ann.schedules, ann.name) == ("active", ("weekly",), NAME)
        assert ann.categories == ("Mindfulness & stress",)
        assert send_schedule(project, "weekly", scaffold.DEMO_AT, smtp_server.url, FAST).outcome == "sent"
        assert send_schedule(project, "sleep", scaffold.DEMO_AT, smtp_server.url, FAST).counts["skipped"] == 1
    finally:
        project.close()
    issue = wait_for_mail(smtp_server, "ann@example.org", 3)[2]
    assert len(smtp_server.handler.received_by("ann@example.org")) == 3  # nothing from "sleep"
    body = text_of(issue)
    assert "MINDFULNESS & STRESS" in body.upper() and "Sleep & recovery" not in body
    # One-click unsubscribe (RFC 8058) still works from the issue's header.
    one_click = re.findall(r"<(http[^>]+)>", issue["List-Unsubscribe"])[0]
    assert urlsplit(one_click).path == "/unsubscribe"
    answer = httpx.post(one_click, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert answer.status_code == 200
    assert statuses(root) == ["unsubscribed"]
