"""The preview in a real browser: Playwright driving Debian's Chromium against
uvicorn on a free loopback port. Screenshots land in tests/artifacts/."""

from __future__ import annotations

import http.client
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter import scaffold
from newsletter.project import Project
from newsletter.web.preview import create_app
from tests.browser import ARTIFACTS, AppServer, chromium, require_chromium
from tests.conftest import NOW, write_article

pytestmark = pytest.mark.slow  # a real browser: seconds a test

sync_api = require_chromium()
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}
INJECTION = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
LIVE_RELOAD_LIMIT = 2.0  # seconds, from the issue


class Server(AppServer):
    """The preview under uvicorn, its clock at the demo's send time."""

    def __init__(self, root: Path) -> None:
        super().__init__(lambda url: create_app(root, clock=lambda: scaffold.DEMO_AT), "preview server")

    def raw_status(self, path: str) -> int:
        """GET a path as written: browsers and httpx resolve `..` before sending."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, made once; tests that edit files work on copies."""
    root = tmp_path_factory.mktemp("preview") / "demo"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    project = Project(root, environ={})
    project.ingest([str(scaffold.demo_articles())], NOW)
    write_article(root / "extra", "evil.txt", INJECTION, "November 22, 2026", "An unsafe title.")
    project.ingest([str(root / "extra/evil.txt")], NOW, category="Movement & fitness")
    project.close()  # the SQLite file is complete on disk, ready to copy
    return root


@pytest.fixture(scope="module")
def server(demo_root: Path) -> Iterator[Server]:
    running = Server(demo_root)
    yield running
    running.stop()


@pytest.fixture
def scratch(demo_root: Path, tmp_path: Path) -> Iterator[tuple[Path, Server]]:
    """A copy of the demo project with its own server: free to edit."""
    root = tmp_path / "scratch"
    shutil.copytree(demo_root, root)
    running = Server(root)
    yield root, running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def console() -> list[str]:
    """Console errors of `page`; a test that expects one (a 404) clears it."""
    return []


@pytest.fixture
def page(browser: object, console: list[str]) -> Iterator[object]:
    """A desktop-sized page that fails the test on any console error (a CSP
    violation against the preview's own script or styles shows up here)."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
    opened = context.new_page()
    opened.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: console.append(str(e)))
    opened.set_default_timeout(5000)
    yield opened
    context.close()
    assert console == []


def expected_titles(root: Path, at_offset_days: int = 0) -> list[str]:
    project = Project(root, environ={})
    try:
        at = scaffold.DEMO_AT + timedelta(days=at_offset_days)
        return [a.title for a in project.build("weekly", at, NOW, record=False).digest.articles]
    finally:
        project.close()


def sidebar_titles(page: object) -> list[str]:
    return page.locator("#articles .article .title").all_inner_texts()  # type: ignore[attr-defined]


def test_index_lists_schedules_and_leads_to_an_issue(page, server: Server, demo_root: Path):
    page.goto(server.url + "/")
    cards = page.locator("article.schedule h2")
    assert cards.all_inner_texts() == ["Sleep Better", "Mind & Body Weekly"]
    page.screenshot(path=str(ARTIFACTS / "preview-index.png"))
    page.get_by_role("link", name="Mind & Body Weekly").click()
    page.wait_for_url("**/schedules/weekly")
    assert sidebar_titles(page) == expected_titles(demo_root)
    frame = page.frame_locator("#frame-desktop")
    sync_api.expect(frame.locator("h1")).to_have_text("Mind & Body Weekly")
    sync_api.expect(frame.locator("h3").first).to_have_text(expected_titles(demo_root)[0])


def test_changing_the_date_changes_the_articles(page, server: Server, demo_root: Path):
    page.goto(server.url + "/schedules/weekly")
    this_week = sidebar_titles(page)
    page.select_option("#at", "2026-11-16T08:00:00+00:00")  # the "Issue of" picker's send times
    page.locator("#issue-picker button").click()
    page.wait_for_url("**/schedules/weekly?at=2026-11-16T08%3A00%3A00%2B00%3A00")
    last_week = sidebar_titles(page)
    assert last_week == expected_titles(demo_root, -7)
    assert not set(last_week) & set(this_week)
    sync_api.expect(page.frame_locator("#frame-mobile").locator("h3").first).to_have_text(last_week[0])
    page.locator("#next").click()  # and back, by the period buttons
    sync_api.expect(page.locator("#articles .article .title").first).to_have_text(this_week[0])
    assert sidebar_titles(page) == this_week


def test_frames_have_true_widths_and_mobile_does_not_scroll_sideways(page, browser, server: Server):
    page.goto(server.url + "/schedules/weekly")
    mobile, desktop = page.locator("#frame-mobile"), page.locator("#frame-desktop")
    sync_api.expect(page.frame_locator("#frame-mobile").locator("h1")).to_be_visible()
    page.wait_for_function("document.getElementById('frame-mobile').style.height !== ''")
    assert mobile.bounding_box()["width"] == 375
    assert desktop.bounding_box()["width"] >= 600
    scroll = mobile.evaluate(
        "f => [f.contentDocument.documentElement.scrollWidth, f.contentDocument.documentElement.clientWidth]"
    )
    assert scroll[0] <= scroll[1], f"mobile email scrolls sideways: {scroll}"
    # Links in the email open in a new tab, not inside the frame.
    assert mobile.evaluate("f => f.contentDocument.querySelector('base').target") == "_blank"
    # The frame is as tall as its email: no scrollbar inside it.
    assert mobile.evaluate("f => f.contentDocument.documentElement.scrollHeight <= f.clientHeight")
    page.screenshot(path=str(ARTIFACTS / "preview-desktop.png"))
    box = mobile.bounding_box()
    page.screenshot(
        path=str(ARTIFACTS / "preview-mobile.png"),
        full_page=True,
        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": 812},
    )
    phone = browser.new_page(viewport=PHONE)
    try:
        phone.goto(server.url + "/schedules/weekly")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=str(ARTIFACTS / "preview-app-on-phone.png"))
    finally:
        phone.close()


def test_text_tab_shows_the_text_part(page, server: Server, demo_root: Path):
    page.goto(server.url + "/schedules/weekly")
    assert not page.locator("#text-part").is_visible()
    page.get_by_role("tab", name="Text part").click()
    sync_api.expect(page.locator("#text-part")).to_contain_text(expected_titles(demo_root)[0][:40])
    assert not page.locator("#frame-desktop").is_visible()


# `scratch` before `page`: the page is closed before its server stops, so a live-reload
# request in flight never meets a closed port (a console error, at teardown, under load).
def test_editing_templates_and_schedules_updates_the_open_page(scratch, page):
    root, running = scratch
    page.goto(running.url + "/schedules/weekly")
    frame = page.frame_locator("#frame-desktop")
    sync_api.expect(frame.locator("h1")).to_have_text("Mind & Body Weekly")
    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page itself
    page.wait_for_function("document.getElementById('frame-desktop').style.height !== ''")
    page.evaluate("window.scrollTo(0, 1500)")  # the editor is reading halfway down

    template = root / "templates/digest.mjml.j2"
    template.write_text(
        template.read_text().replace(
            '<h1 style="{{ s.h1 }}">{{ schedule.title }}</h1>',
            '<h1 style="{{ s.h1 }}">{{ schedule.title }} (edited)</h1>',
        )
    )
    started = time.monotonic()
    sync_api.expect(frame.locator("h1")).to_have_text("Mind & Body Weekly (edited)", timeout=4000)
    assert time.monotonic() - started < LIVE_RELOAD_LIMIT
    assert page.evaluate("window.scrollY") == 1500  # updated in place: no jump to the top

    schedule = root / "schedules/weekly.toml"
    schedule.write_text(schedule.read_text().replace('title = "Mind & Body Weekly"', 'title = "Renamed"'))
    sync_api.expect(page.locator("h1").first).to_have_text("Renamed", timeout=4000)
    sync_api.expect(frame.locator("h1")).to_have_text("Renamed (edited)")
    assert page.evaluate("window.notReloaded") is True


def test_broken_template_shows_its_error_in_the_page_and_recovers(scratch, page):
    root, running = scratch
    page.goto(running.url + "/schedules/weekly")
    template = root / "templates/digest.mjml.j2"
    good = template.read_text()
    lines = good.splitlines()
    at = lines.index("{% endif %}")  # a line of Jinja alone: the error is Jinja's, at that line
    lines[at] = "{% for x in %}"
    template.write_text("\n".join(lines))
    panel = page.locator("#error")
    sync_api.expect(panel).to_be_visible(timeout=4000)
    sync_api.expect(panel).to_contain_text("templates/digest.mjml.j2")
    sync_api.expect(panel.locator(".where")).to_contain_text(f"line {at + 1}")
    sync_api.expect(panel.locator(".excerpt .bad")).to_contain_text("{% for x in %}")
    assert "Traceback" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "preview-template-error.png"))
    template.write_text(good)
    sync_api.expect(page.frame_locator("#frame-desktop").locator("h1")).to_have_text(
        "Mind & Body Weekly", timeout=4000
    )


def test_traversal_attempts_get_404_or_400(page, server: Server, console: list[str]):
    for path in (
        "/schedules/..%2F..%2Fetc%2Fpasswd",
        "/schedules/%2e%2e",
        "/schedules/weekly/../../x",
        "/schedules/../newsletter.toml",
        "/static/../preview.py",
        "/schedules/..%5Cweekly",
    ):
        assert server.raw_status(path) in (400, 404), path
    response = page.goto(server.url + "/schedules/..%2Fnewsletter.toml")  # %2e%2e: Chromium resolves it
    assert response.status == 404
    sync_api.expect(page.locator("h1")).to_have_text("Not found")
    console.clear()  # Chromium logs the 404 itself


def test_injected_title_shows_as_text(page, server: Server):
    page.goto(server.url + "/schedules/weekly")
    assert INJECTION in sidebar_titles(page)
    frame = page.frame_locator("#frame-desktop")
    sync_api.expect(frame.locator("h3", has_text="window.pwned=1")).to_have_text(INJECTION)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#frame-desktop").evaluate("f => f.contentWindow.pwned") is None
