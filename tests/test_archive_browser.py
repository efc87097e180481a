"""The archive page in a real browser: Playwright driving Debian's Chromium against the
public app under uvicorn on a loopback port, at phone, small-tablet and desktop widths,
light and dark. Screenshots land in tests/artifacts/archive-WIDTH-SCHEME.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.public import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW, write_article

pytestmark = pytest.mark.slow  # a real browser

require_chromium()
ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789"}
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
LONG = "An unusually long headline about sleep " * 4 + "<b>not bold</b>"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with three weeks of `weekly` and two of `sleep` sent."""
    base = tmp_path_factory.mktemp("archive")
    root = base / "demo"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    project = Project(root, environ=ENV)
    try:
        project.ingest([str(scaffold.demo_articles())], NOW)
        Roster(project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
        for week in range(3):
            at = scaffold.DEMO_AT + timedelta(days=7 * week)
            if week:
                folder = base / f"week{week}"
                write_article(folder, "a.txt", f"{LONG} {week}", f"{at - timedelta(days=2):%Y-%m-%d}")
                project.ingest([str(folder)], at, category="Sleep & recovery")
            for name in ("weekly", "sleep"):
                summary = send_schedule(project, name, at, f"file:{base / 'outbox'}", FAST)
                assert summary.outcome in ("sent", "skipped"), summary
    finally:
        project.close()
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[AppServer]:
    running = AppServer(lambda url: create_app(root, ENV, clock=lambda: NOW), "public server")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600, 1280])
def test_archive_page_at_every_width(browser: object, server: AppServer, width: int, scheme: str):
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": 900}, color_scheme=scheme
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url + "/issues")  # the redirect to /issues/ too
        assert page.url == server.url + "/issues/"
        assert page.locator("section h2 > span").all_inner_texts() == ["Sleep Better", "Mind & Body Weekly"]
        weekly = page.locator("section").nth(1).locator("ol.issues li a")
        assert weekly.count() == 3
        assert "<b>not bold</b>" in weekly.first.inner_text()  # shown as text, never markup
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
        page.screenshot(path=str(ARTIFACTS / f"archive-{width}-{scheme}.png"), full_page=True)
        weekly.first.click()
        page.wait_for_url("**/issues/weekly-2026-12-07.html")
        assert errors == []
    finally:
        context.close()
