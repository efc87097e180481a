"""Shared fixtures: real project folders with a real SQLite file, no mocks.

`pytest --backend=postgresql` (or NEWSLETTER_TEST_BACKEND=postgresql) runs the same suite
with every project made by `init` pointed at its own database on one private PostgreSQL
server for the session (tests/postgres.py): the `[database] url` of the settings `init`
writes is the only difference. Tests of the SQLite file itself are marked `sqlite_only`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result

from newsletter import scaffold
from newsletter.cli import main
from newsletter.core.models import SubscriberRow
from newsletter.project import Project
from newsletter.storage.roster import Roster

if TYPE_CHECKING:
    from tests.postgres import Databases

FIXTURES = Path(__file__).parent / "fixtures"
# The envelope sender of a delivery from the scaffold's project: its own return path (VERP).
VERP = re.compile(r"bounces\+\d+-[0-9a-f]{20}@example\.org")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECRET_KEY = "test-secret-key-0123456789"  # NEWSLETTER_SECRET_KEY of the sending tests
SECRET = {"NEWSLETTER_SECRET_KEY": SECRET_KEY}
# The sending tests' audience: Ann and Bob want everything, Cat only sleep.
THREE_READERS = (
    SubscriberRow("ann@example.org", "Ann"),
    SubscriberRow("bob@example.org", "Bob"),
    SubscriberRow("cat@example.org", "Cat", ("Sleep & recovery",)),
)

PARAGRAPH = (
    "Researchers followed several hundred adults for a year and found that small, "
    "repeatable habits changed how people felt far more than occasional big efforts did. "
    "The effect held across ages and was strongest for people who started with the "
    "least sleep, which suggests that modest changes matter most where they are needed."
)


def write_article(
    folder: Path,
    name: str,
    title: str,
    published: str,
    standfirst: str = "",
    body: Sequence[str] = (PARAGRAPH, PARAGRAPH),
    related: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """An article in the text format: title, standfirst, Published, body, Related."""
    lines = [title, standfirst or f"A standfirst about {title.lower()}.", f"Published {published}", *body]
    if related:
        lines.append("Related Articles")
        for category, summary, date in related:
            lines += [category, summary, "-", date]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


SQLITE_URL_LINE = 'url = "sqlite:///newsletter.db"'


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("NEWSLETTER_TEST_BACKEND", "sqlite"),
        help="the database every test project uses (default: NEWSLETTER_TEST_BACKEND, else sqlite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a test of the SQLite file itself; skipped with --backend=postgresql"
    )


@pytest.fixture(scope="session")
def backend_server(request: pytest.FixtureRequest) -> Iterator[Databases | None]:
    """With --backend=postgresql: one private server for the session; else None."""
    if request.config.getoption("backend") != "postgresql":
        yield None
        return
    from tests.postgres import BIN, private_server

    if os.geteuid() != 0 or BIN is None:
        pytest.exit("--backend=postgresql needs root and Debian's postgresql (make postgresql)", 2)
    with private_server() as database:
        yield database


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's database backend. On PostgreSQL, each project `init` makes gets a new
    database of its own, written into its newsletter.toml as a user would write it, and
    dropped after the test."""
    server: Databases | None = request.getfixturevalue("backend_server")
    if server is None:
        yield "sqlite"
        return
    if marker := request.node.get_closest_marker("sqlite_only"):
        pytest.skip(f"SQLite only: {marker.args[0] if marker.args else marker.kwargs['reason']}")
    written, made = scaffold.settings_text, []

    def on_postgresql(*args: Any, **kwargs: Any) -> str:
        made.append(server())
        return written(*args, **kwargs).replace(SQLITE_URL_LINE, f'url = "{made[-1]}"', 1)

    monkeypatch.setattr(scaffold, "settings_text", on_postgresql)
    yield "postgresql"
    for url in made:
        server.drop(url)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "")
OUTSIDE: set[str] = set()  # names a test tried to look up, for the guard's report


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    """Tests talk to 127.0.0.1 only. A name elsewhere (a feed's picture on a CDN, an
    example domain) is refused at once, as on a machine without DNS, and named at the end
    of the run, instead of a look-up leaving the machine."""
    real = socket.getaddrinfo

    def guarded(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name not in LOOPBACK_NAMES and not name.startswith("127."):
            OUTSIDE.add(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests look up 127.0.0.1 only, not {name}")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.getaddrinfo = guarded  # type: ignore[assignment]
    yield
    socket.getaddrinfo = real
    if OUTSIDE:
        print(f"\nloopback_only: refused look-ups of {sorted(OUTSIDE)}")


@pytest.fixture(autouse=True)
def allow_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' projects send from `init`'s placeholder From (example.org) to the test
    servers: `send` and `run` are told so, as a user would (the commands and any process
    they start read the variable). tests/test_send.py deletes it to see the refusal."""
    monkeypatch.setenv("NEWSLETTER_ALLOW_PLACEHOLDERS", "1")


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    return root


@pytest.fixture
def project(project_dir: Path) -> Iterator[Project]:
    opened = Project(project_dir, environ={})
    yield opened
    opened.close()


@pytest.fixture
def demo_project(project: Project) -> Project:
    """The demo's sample articles in a fresh project."""
    project.ingest([str(scaffold.demo_articles())], NOW)
    return project


@pytest.fixture
def sender(demo_project: Project) -> Iterator[Project]:
    """The demo archive, opened with a signing key, and three subscribers. (Modules that
    need another audience define their own `sender`.)"""
    project = Project(demo_project.root, environ=SECRET)
    Roster(project.store).import_subscribers(THREE_READERS, NOW)
    yield project
    project.close()


@pytest.fixture
def cli(project_dir: Path) -> CliRunnerForProject:
    return CliRunnerForProject(project_dir)


class CliRunnerForProject:
    """Runs `newsletter --project DIR ...` in-process, stdout and stderr apart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(main, ["--project", str(self.root), *args], catch_exceptions=False)


# -- a real SMTP server on loopback (aiosmtpd), with failures on demand -------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SMTPHandler:
    """Records what it accepts. `rcpt_replies[address]` is a list of replies given
    to that address's next RCPT attempts (e.g. a 451 once); `drop_after_data`
    holds addresses whose DATA is received and then the connection is cut before
    the reply; `delay` slows every DATA down (seconds)."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    drop_after_data: set[str] = field(default_factory=set)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        replies = self.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.drop_after_data & set(envelope.rcpt_tos):
            self.drop_after_data -= set(envelope.rcpt_tos)
            with self.lock:
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            server.transport.close()  # the message arrived; the reply never will
            return "250 OK"
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def received_by(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.recipients]


@dataclass
class SMTPServer:
    handler: SMTPHandler
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=2"


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    handler = SMTPHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer(handler, port)
    finally:
        controller.stop()
