"""README's "Your first newsletter", run as a script: each `newsletter ...` line of that
section, parsed from the README (so the two cannot drift apart), is run as written, with
only the outside world swapped for real servers on 127.0.0.1: the feed is an RSS file
served by a local HTTP server, the SMTP server is aiosmtpd, and `serve` is the public app
through Starlette's TestClient at https://field-notes.eu/newsletter (a proxy passing the
path on). Each step's output is checked; a command the script does not know fails it."""

from __future__ import annotations

import html as htmllib
import re
import shlex
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest
from click.testing import CliRunner, Result
from starlette.exceptions import StarletteDeprecationWarning

from newsletter.audience.dispatch import for_serve
from newsletter.cli import main
from newsletter.core.config import load_settings, source_name
from newsletter.delivery.transports import Courier
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.public import create_app
from tests.conftest import FIXTURES, SMTPServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

README = Path(__file__).parent.parent / "README.md"
SECTION = "## Your first newsletter"
# What the README names in the outside world, and what stands for it here.
FEED = "https://field-notes.eu/feed.xml"
SMTP = "smtp+starttls://news@smtp.field-notes.eu"
PUBLIC = "https://field-notes.eu/newsletter"
KEY = "walkthrough-secret-key-0123456789"
POSTAL = 'postal_address = "Feldweg 1, 79100 Freiburg"'


# -- the README's section, read as a script ------------------------------------------


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


@dataclass
class Line:
    """A command line of the section, and the lines its console block shows it printing."""

    words: list[str]
    shown: list[str] = field(default_factory=list)


def script() -> list[Line]:
    """The section's command lines in order: `cd`, `export` and `newsletter` (a `$ ` prompt
    and `\\` line continuations read as a shell reads them; comments dropped), each with
    what it is shown printing in a console block."""
    found: list[Line] = []
    for kind, block in re.findall(r"```(sh|console)\n(.*?)```", section(), flags=re.S):
        for text in block.replace("\\\n", " ").splitlines():
            if kind == "console" and not text.startswith("$ "):
                found[-1].shown.append(text)
            elif words := shlex.split(text.removeprefix("$ "), comments=True):
                found.append(Line(words))
    return [line for line in found if line.words[0] in ("cd", "export", "newsletter")]


def shown_as(line: str) -> re.Pattern[str]:
    """A line as the README shows it, as a pattern: `...` stands for anything, and a
    number for any number (dates, sizes, timings)."""
    parts = re.split(r"(\.\.\.|\d+)", line.strip())
    pattern = "".join(".*" if p == "..." else r"\d+" if p.isdigit() else re.escape(p) for p in parts)
    return re.compile(pattern)


def test_the_section_runs_init_fetch_build_import_keygen_send_run_serve_status():
    ran = [" ".join(line.words[:2]) for line in script() if line.words[0] == "newsletter"]
    assert ran == [
        "newsletter init",
        "newsletter fetch",
        "newsletter build",
        "newsletter subscribers",
        "newsletter dkim",
        "newsletter send",
        "newsletter run",
        "newsletter serve",
        "newsletter status",
    ]


# -- the outside world, on 127.0.0.1 -------------------------------------------------


class FeedHandler(BaseHTTPRequestHandler):
    """The site's feed: tests/fixtures/walkthrough/feed.xml, its MINUTES-N dates made N
    minutes before now, so the articles are this week's news whatever day the test runs."""

    def do_GET(self) -> None:  # noqa: N802
        now = datetime.now(UTC).replace(microsecond=0)
        text = (FIXTURES / "walkthrough" / "feed.xml").read_text(encoding="utf-8")
        text = re.sub(
            r"MINUTES-(\d+)",
            lambda m: format_datetime(now - timedelta(minutes=int(m.group(1)))),
            text,
        )
        body = text.encode()
        self.send_response(200)
        self.send_header("content-type", "application/rss+xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Clock:
    """serve's clock: now, moved on when a person would take a while (the signup form)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


# -- the walk-through ----------------------------------------------------------------


class Walk:
    def __init__(self, tmp: Path, feed: str, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.feed, self.smtp, self.monkeypatch = tmp, feed, smtp, monkeypatch
        self.runner = CliRunner()
        self.shown: list[str] = []

    def swap(self, word: str) -> str:
        return {FEED: self.feed, SMTP: self.smtp.url}.get(word, word)

    def cli(self, words: list[str]) -> Result:
        result = self.runner.invoke(main, [self.swap(w) for w in words[1:]], catch_exceptions=False)
        assert result.exit_code == 0, f"{shlex.join(words)}\n{result.output}"
        self.printed_as_shown(words, result.output)
        return result

    def printed_as_shown(self, words: list[str], output: str) -> None:
        """Every line the README shows the command printing is printed (here the home
        folder is the test's, and the feed is served from 127.0.0.1)."""
        output = output.replace(str(self.tmp / "home"), "/home/you").replace(str(self.tmp), "/home/you")
        output = output.replace(source_name(self.feed), source_name(FEED))
        printed = [p.strip() for p in output.splitlines()]
        for shown in self.shown:
            assert any(shown_as(shown).fullmatch(p) for p in printed), (
                f"README shows `{shlex.join(words)}` printing\n{shown}\nbut it printed\n{output}"
            )

    def run(self, line: Line) -> None:
        self.shown = line.shown
        self.step(line.words)

    def step(self, words: list[str]) -> None:
        if words[0] == "cd":
            self.monkeypatch.chdir(Path.cwd() / words[1])
        elif words[0] == "export":
            name = words[1].split("=", 1)[0]
            self.monkeypatch.setenv(name, KEY if name == "NEWSLETTER_SECRET_KEY" else "unused-here")
        else:
            check = CHECKS.get(" ".join(words[1:3])) or CHECKS.get(words[1])
            assert check is not None, f"the walk-through runs {shlex.join(words)}: teach this test it"
            check(self, words)


def init(walk: Walk, words: list[str]) -> None:
    out = walk.cli(words).output
    assert "created field-notes/newsletter.toml" in out
    assert re.search(r"^[\w-]+-feed-xml: ok: 3 added", out, flags=re.M), out
    assert "Next (in field-notes: cd field-notes):\n  1. newsletter build weekly" in out
    root = Path("field-notes")
    settings = load_settings(root, {})
    assert (settings.site.name, settings.site.base_url) == ("Field Notes", "https://field-notes.eu")
    assert settings.site.timezone == "Europe/Berlin" and settings.public_url == PUBLIC
    assert settings.site.language == "de"
    assert settings.email.from_ == "Field Notes <news@field-notes.eu>"
    assert [s.url for s in settings.sources] == [walk.feed] and settings.email.transport == walk.smtp.url
    assert 'timezone = "Europe/Berlin"' in (root / "schedules" / "weekly.toml").read_text()
    # "Then set postal_address in newsletter.toml": no placeholder is left to send from.
    toml = root / "newsletter.toml"
    toml.write_text(re.sub(r"^postal_address = .*$", POSTAL, toml.read_text(), flags=re.M))
    walk.monkeypatch.delenv("NEWSLETTER_ALLOW_PLACEHOLDERS")


def fetch(walk: Walk, words: list[str]) -> None:
    out = walk.cli(words).output
    assert re.search(r"^[\w-]+-feed-xml: (ok|not-modified): ", out, flags=re.M), out
    with closing(Project(Path.cwd())) as project:
        titles = {s.article.title for s in project.store.articles()}
    assert titles == {
        "Rain walks in the Black Forest",
        "Old maps of the Rhine valley",
        "Walking the old salt roads",
    }


def build(walk: Walk, words: list[str]) -> None:
    out = walk.cli(words).output
    html = next(Path(p) for p in out.split() if p.endswith(".html"))
    assert html.parent == Path.cwd() / "issues" and html.is_file()
    assert "Rain walks in the Black Forest" in html.read_text() and "Old maps" in html.read_text()


def subscribers(walk: Walk, words: list[str]) -> None:
    (csv,) = blocks("csv")  # readers.csv as the README shows it
    Path(words[3]).write_text(csv, encoding="utf-8")
    out = walk.cli(words).output
    assert out.startswith("1 added, 0 updated"), out


def dkim(walk: Walk, words: list[str]) -> None:
    walk.monkeypatch.setenv("HOME", str(walk.tmp / "home"))  # the key goes outside the project
    out = walk.cli(words).output
    assert "Publish this DNS TXT record at nl2026._domainkey.field-notes.eu" in out
    lines = out[out.index("  [dkim]") :].splitlines()
    key = Path(lines[-1].split('"')[1])
    assert key.is_file() and walk.tmp / "home" in key.parents
    # "the [dkim] lines to add to newsletter.toml"
    with open("newsletter.toml", "a", encoding="utf-8") as toml:
        toml.write("\n" + "\n".join(line.strip() for line in lines) + "\n")


def send(walk: Walk, words: list[str]) -> None:
    out = walk.cli(words).output
    assert "1 sent" in out, out
    (mail,) = walk.smtp.handler.received_by("you@field-notes.eu")
    message = message_from_bytes(mail.data, policy=policy.default)
    assert "d=field-notes.eu" in str(message["DKIM-Signature"]) and "s=nl2026" in str(
        message["DKIM-Signature"]
    )
    assert str(message["From"]) == "Field Notes <news@field-notes.eu>"
    assert f"{PUBLIC}/unsubscribe?token=" in str(message["List-Unsubscribe"])


def run(walk: Walk, words: list[str]) -> None:
    walk.cli(words)


def serve(walk: Walk, words: list[str]) -> None:
    """The public app as `serve` makes it (its courier and dispatcher), reached through a
    proxy that passes /newsletter/... on: a newcomer signs up and confirms from the mail."""
    clock = Clock()
    app = create_app(Path.cwd(), clock=clock, courier_for=Courier.for_url, dispatch_for=for_serve)
    with TestClient(app, base_url="https://field-notes.eu") as http:
        form = http.get("/newsletter/subscribe")
        assert form.status_code == 200
        assert action(form.text, str(form.url)) == f"{PUBLIC}/subscribe"
        clock.now += timedelta(seconds=5)  # a person takes a while to fill it in
        data = {
            "email": "newcomer@field-notes.eu",
            "name": "New",
            "form_token": hidden(form.text, "form_token"),
        }
        assert http.post(f"{PUBLIC}/subscribe", data=data).status_code == 200
        (mail,) = walk.smtp.handler.received_by("newcomer@field-notes.eu")  # drained after the answer
        message = message_from_bytes(mail.data, policy=policy.default)
        text = message.get_body(("plain",))
        assert text is not None
        link = re.search(rf"{re.escape(PUBLIC)}/confirm\?token=\S+", str(text.get_content()))
        assert link is not None, "the confirmation link points under the prefix"
        page = http.get(link.group(0))
        assert action(page.text, str(page.url)) == f"{PUBLIC}/confirm"
        confirmed = http.post(f"{PUBLIC}/confirm", data=fields(page.text))  # the button, pressed
        assert confirmed.status_code == 200, confirmed.text
    with closing(Project(Path.cwd())) as project:
        people = {s.email: str(s.status) for s in Roster(project.store).subscribers()}
    assert people == {"you@field-notes.eu": "active", "newcomer@field-notes.eu": "active"}


def status(walk: Walk, words: list[str]) -> None:
    out = walk.cli(words).output
    assert "weekly" in out and "-feed-xml" in out, out


def action(page: str, url: str) -> str:
    found = re.search(r'<form[^>]*action="([^"]*)"', page)
    assert found is not None
    return urljoin(url, htmllib.unescape(found.group(1)))


def hidden(page: str, name: str) -> str:
    return fields(page)[name]


def fields(page: str) -> dict[str, str]:
    """The form's hidden fields, as a browser sends them (the CSRF token among them)."""
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return {name: htmllib.unescape(value) for name, value in found}


CHECKS: dict[str, Callable[[Walk, list[str]], None]] = {
    "init": init,
    "fetch": fetch,
    "build": build,
    "subscribers import": subscribers,
    "dkim keygen": dkim,
    "send": send,
    "run": run,
    "serve": serve,
    "status": status,
}


@pytest.mark.slow  # ~4 s: every step of the README, a feed and an SMTP server
def test_the_readme_walk_through_runs_as_written(
    tmp_path: Path, feed_url: str, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NEWSLETTER_SECRET_KEY", "NEWSLETTER_SMTP_PASSWORD", "NEWSLETTER_EMAIL_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    walk = Walk(tmp_path, feed_url, smtp_server, monkeypatch)
    for line in script():
        walk.run(line)
