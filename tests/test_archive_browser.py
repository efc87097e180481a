"""The archive page in a real browser: Playwright driving Debian's Chromium against the
public app under uvicorn on a loopback port, at phone, small-tablet and desktop widths,
light and dark. Screenshots land in tests/artifacts/archive-WIDTH-SCHEME.png."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from newsletter import scaffold
from newsletter.ledger import Ledger
from newsletter.project import Project
from newsletter.send import SendOptions, send_schedule
from newsletter.subscribers import SubscriberRow
from newsletter.web.public import create_app
from tests.conftest import NOW, write_article

pytestmark = pytest.mark.slow  # a real browser

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # `make test` installs it; never download a browser
    pytest.skip("Debian's chromium is not installed (make chromium)", allow_module_level=True)

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
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
        Ledger(project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
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


class Server:
    """uvicorn in a thread, on a socket bound before start: no port race."""

    def __init__(self, root: Path) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        app = create_app(root, ENV, clock=lambda: NOW)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "public server did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.socket.close()


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[Server]:
    running = Server(root)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600, 1280])
def test_archive_page_at_every_width(browser: object, server: Server, width: int, scheme: str):
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
