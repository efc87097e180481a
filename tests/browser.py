"""What the browser tests share: Debian's Chromium through Playwright (never a downloaded
browser), and an app under uvicorn in a thread on a loopback socket bound first (no port
race, and the URL is known before the app is made)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


def require_chromium() -> Any:
    """Playwright's sync API, or the calling test module skipped (at import)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():  # `make test` installs it; never download a browser
        pytest.skip("Debian's chromium is not installed (make chromium)", allow_module_level=True)
    return sync_api


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium; screenshots go to ARTIFACTS."""
    sync_api = require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class AppServer:
    """An ASGI app (made by `make_app` from the server's own URL) served in a thread."""

    def __init__(self, make_app: Callable[[str], ASGIApp], name: str = "server") -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.name = name
        self.server = uvicorn.Server(uvicorn.Config(make_app(self.url), log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.socket.close()
        assert not self.thread.is_alive(), f"{self.name} did not stop"
