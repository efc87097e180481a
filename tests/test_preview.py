"""The preview app's routes, through Starlette's test client (no browser, no socket)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import anyio
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.types import Message

from newsletter import scaffold
from newsletter.cli import main
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery.send import SendPlan, send
from newsletter.delivery.transports import MemoryTransport
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.preview import create_app
from newsletter.web.views import BadMoment, Size, parse_moment
from tests.conftest import NOW, write_article

with warnings.catch_warnings():  # Starlette 1.x would rather its test client ran on httpx2,
    warnings.simplefilter("ignore", StarletteDeprecationWarning)  # and httpx is what we pin.
    from starlette.testclient import TestClient

LONDON = ZoneInfo("Europe/London")
INJECTION = "</mj-text><script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def app(demo_project: Project) -> Starlette:
    return create_app(demo_project.root, clock=lambda: scaffold.DEMO_AT)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def titles(demo_project: Project, at: datetime) -> list[str]:
    build = demo_project.build("weekly", at, NOW, record=False)
    return [a.title for a in build.digest.articles]


def raw_status(app: Starlette, raw_path: bytes) -> int:
    """GET a path exactly as written: clients normalise `..` away, an attacker's need not.
    The path is percent-decoded as uvicorn does (so %2F arrives as a slash)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode()),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    anyio.run(app, scope, receive, send)
    return statuses[0]


def test_index_lists_every_schedule_with_next_send_and_counts(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200
    for name, title in (("weekly", "Mind &amp; Body Weekly"), ("sleep", "Sleep Better")):
        assert f'href="/schedules/{name}"' in page.text
        assert title in page.text
    assert "Mon 23 Nov 2026, 08:00 GMT" in page.text  # DEMO_AT is a send time: that issue is next
    assert "Europe/London" in page.text
    counts = re.findall(r"<th scope=\"row\">Total</th><td>(\d+)</td>", page.text)
    assert [int(n) for n in counts] == [2, 9]  # sleep, weekly (files in name order)


def test_index_shows_last_sent_and_built_issues(client: TestClient, demo_project: Project):
    built = demo_project.build("weekly", scaffold.DEMO_AT, NOW)
    text = client.get("/").text
    assert "Not sent yet." in text
    assert "Latest issue:" in text
    assert 'href="/schedules/weekly?at=2026-11-23T08%3A00%3A00%2B00%3A00"' in text
    Roster(demo_project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
    relay = MemoryTransport()
    summary = send(
        SendPlan(demo_project, "weekly", scaffold.DEMO_AT, clock=lambda: NOW),
        lambda: relay,
        lambda: Tokens("test-secret-key-0123456789"),
    )
    assert summary.outcome == "sent"
    assert [recipient for _, recipient, _ in relay.sent] == ["ann@example.org"]
    text = client.get("/").text
    assert "Last sent:" in text
    assert "Mon 23 Nov 2026" in text
    assert built.issue
    assert built.issue.subject.replace("&", "&amp;") in text


def test_issue_page_shows_the_issue(client: TestClient, demo_project: Project):
    page = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"})
    assert page.status_code == 200
    text = page.text
    for title in titles(demo_project, scaffold.DEMO_AT):
        assert title.replace("&", "&amp;").replace('"', "&#34;") in text
    assert 'id="subject"' in text
    assert 'id="preheader"' in text
    assert "digest@example.org" in text
    assert re.search(r'class="badge ok" id="size">\d+\.\d KB<', text)
    assert 'id="at-other" name="at" value="2026-11-23 08:00"' in text
    frames = re.findall(r"<iframe[^>]*>", text)
    assert len(frames) == 2
    assert all('sandbox="' in f and "allow-scripts" not in f for f in frames)
    assert "/schedules/weekly/issue.html?at=" in frames[0]
    previous = re.search(r'id="previous" rel="prev" href="([^"]+)"', text)
    assert previous
    assert unquote(previous[1]).endswith("at=2026-11-16T08:00:00+00:00")
    assert "Traceback" not in text


def test_issue_page_defaults_to_now(client: TestClient):
    text = client.get("/schedules/weekly").text
    assert "(now)" in text
    assert 'Issue of <b dir="ltr">Mon 23 Nov 2026, 08:00 GMT</b>' in text


def test_raw_parts_have_their_types_and_a_script_free_csp(client: TestClient):
    at = {"at": "2026-11-23T08:00:00+00:00"}
    html = client.get("/schedules/weekly/issue.html", params=at)
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'none'" in html.headers["content-security-policy"]
    assert html.text.lower().startswith("<!doctype html>")
    txt = client.get("/schedules/weekly/issue.txt", params=at)
    assert txt.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Mind & Body Weekly" in txt.text
    eml = client.get("/schedules/weekly/issue.eml", params=at)
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == 'attachment; filename="weekly-2026-11-23.eml"'
    message = message_from_bytes(eml.content, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert client.get("/schedules/weekly/issue.exe").status_code == 404


def test_pages_carry_security_headers(client: TestClient):
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


def test_foreign_host_header_is_refused(client: TestClient):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read drafts."""
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200


def test_unknown_schedule_is_a_404_page(client: TestClient):
    page = client.get("/schedules/nope")
    assert page.status_code == 404
    assert "There is no schedule named &#39;nope&#39;" in page.text
    assert 'href="/"' in page.text
    assert client.get("/schedules/nope/issue.html").status_code == 404
    assert client.get("/no/such/page").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        b"/schedules/..%2F..%2Fetc%2Fpasswd",
        b"/schedules/%2e%2e",
        b"/schedules/..",
        b"/schedules/weekly/../../x",
        b"/schedules/../newsletter.toml",
        b"/schedules/%2e%2e%2fnewsletter",
        b"/schedules/weekly%2F..%2Fsleep",
        b"/schedules/..%5Cnewsletter",
        b"/schedules/.%2e/issue.html",
        b"/static/../preview.py",
        b"/static/%2e%2e/preview.py",
        b"/static/..%2Fviews.py",
    ],
)
def test_traversal_attempts_get_404_or_400(app: Starlette, path: bytes):
    assert raw_status(app, path) in (400, 404)


def test_bad_moment_is_a_400_page(client: TestClient):
    page = client.get("/schedules/weekly", params={"at": "next tuesday"})
    assert page.status_code == 400
    assert "ISO 8601" in page.text
    assert client.get("/schedules/weekly/issue.html", params={"at": "2026-13-01"}).status_code == 400
    assert client.get("/schedules/weekly", params={"at": "9999-12-31T23:00"}).status_code == 400


def test_reflected_input_is_escaped(client: TestClient):
    bad_moment = client.get("/schedules/weekly", params={"at": "<script>alert(1)</script>"})
    assert bad_moment.status_code == 400
    assert "&lt;script&gt;alert(1)" in bad_moment.text
    unknown = client.get("/schedules/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert unknown.status_code == 404
    assert "<script>alert" not in unknown.text


def test_size_levels_against_gmail_clip():
    assert [Size(n * 1024).level for n in (40, 90, 103)] == ["ok", "near", "over"]
    assert Size(37_850).kb == "37.0"


def test_moments_parse_like_the_command_line():
    assert parse_moment("2026-11-23T08:00", LONDON, NOW) == datetime(2026, 11, 23, 8, tzinfo=LONDON)
    assert parse_moment("2026-11-23", LONDON, NOW) == datetime(2026, 11, 23, 0, tzinfo=LONDON)
    assert parse_moment("2026-11-23T08:00+01:00", LONDON, NOW) == datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert parse_moment("2026-11-23T08:00 01:00", LONDON, NOW).utcoffset() == timedelta(hours=1)
    assert parse_moment("2026-11-23T08:00:00.5 01:00", LONDON, NOW).utcoffset() == timedelta(hours=1)
    assert parse_moment("2026-11-23 08:00", LONDON, NOW) == datetime(2026, 11, 23, 8, tzinfo=LONDON)
    assert parse_moment(None, LONDON, NOW) == parse_moment("", LONDON, NOW) == NOW
    with pytest.raises(BadMoment):
        parse_moment("23/11/2026", LONDON, NOW)


def test_template_error_shows_name_line_and_excerpt(client: TestClient, demo_project: Project):
    template = demo_project.root / "templates/digest.mjml.j2"
    lines = template.read_text().splitlines()
    lines[12] = "{% if %}"  # line 13
    template.write_text("\n".join(lines))
    page = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"})
    assert page.status_code == 200
    assert "Template error" in page.text
    assert "templates/digest.mjml.j2" in page.text
    assert "line <b>13</b>" in page.text
    assert '<span class="bad"><i>13</i>{% if %}' in page.text
    assert "Fix the template" in page.text
    assert "Traceback" not in page.text
    part = client.get("/schedules/weekly/issue.html", params={"at": "2026-11-23T08:00"})
    assert part.status_code == 500
    assert "digest.mjml.j2:13" in part.text
    assert "Traceback" not in part.text


def test_error_in_a_partial_names_the_partial(client: TestClient, demo_project: Project):
    partial = demo_project.root / "templates/partials/article.mjml.j2"
    partial.write_text(partial.read_text().replace("{{ article.title }}", "{{ article.title.nope() }}"))
    text = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"}).text
    assert "article.mjml.j2" in text
    assert re.search(r"line <b>\d+</b>", text)
    assert "templates/partials/article.mjml.j2" in text  # the file, found from the base name


def test_mjml_error_names_the_template(client: TestClient, demo_project: Project):
    template = demo_project.root / "templates/digest.mjml.j2"
    template.write_text(template.read_text().replace("</mjml>", ""))
    text = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"}).text
    assert "Template error" in text
    assert re.search(
        r"digest.mjml.j2:\d+: &lt;mjml&gt; is never closed|digest.mjml.j2:\d+: <mjml> is never closed", text
    )


def test_new_project_template_shadows_the_default(client: TestClient, demo_project: Project, tmp_path: Path):
    """A partial copied into a project after the default was compiled must win at once."""
    other = tmp_path / "bare"
    scaffold.init(other, name="Bare", demo=True)
    (other / "templates/partials/article.mjml.j2").unlink()
    project = Project(other, environ={})
    project.ingest([str(scaffold.demo_articles())], NOW)
    project.close()
    with TestClient(create_app(other, clock=lambda: scaffold.DEMO_AT), base_url="http://127.0.0.1") as bare:
        assert "SHADOWED" not in bare.get("/schedules/sleep/issue.html").text
        (other / "templates/partials/article.mjml.j2").write_text("<mj-text><p>SHADOWED</p></mj-text>")
        assert "SHADOWED" in bare.get("/schedules/sleep/issue.html").text


def test_empty_period_says_so(client: TestClient):
    at = {"at": "2026-11-30T08:00"}
    page = client.get("/schedules/weekly", params=at)
    assert page.status_code == 200
    assert "Nothing new in this period" in page.text
    assert "skip_if_empty = true" in page.text
    assert "<iframe" not in page.text
    part = client.get("/schedules/weekly/issue.html", params=at)
    assert part.status_code == 404
    assert "Nothing new in this period" in part.text


def test_empty_period_without_skip_shows_the_empty_email(client: TestClient, demo_project: Project):
    schedule = demo_project.root / "schedules/weekly.toml"
    schedule.write_text(schedule.read_text().replace("skip_if_empty = true", "skip_if_empty = false"))
    page = client.get("/schedules/weekly", params={"at": "2026-11-30T08:00"})
    assert "Nothing new in this period" in page.text
    assert "<iframe" in page.text
    part = client.get("/schedules/weekly/issue.html", params={"at": "2026-11-30T08:00"})
    assert "No new articles this time" in part.text


def test_injected_title_is_escaped_in_the_page(client: TestClient, demo_project: Project, tmp_path: Path):
    write_article(tmp_path, "evil.txt", INJECTION, "November 22, 2026", f"Standfirst {INJECTION}")
    demo_project.ingest([str(tmp_path / "evil.txt")], NOW, category="Sleep & recovery")
    text = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"}).text
    assert "&lt;/mj-text&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x" in text
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert (
        "<script"
        not in client.get("/schedules/weekly/issue.html", params={"at": "2026-11-23T08:00"}).text.lower()
    )


def test_broken_schedule_file_is_shown_and_the_others_still_listed(client: TestClient, demo_project: Project):
    broken = demo_project.root / "schedules/broken.toml"
    broken.write_text('title = "B"\ncron = "0 8 * *"\ncategories = ["A"]\n')
    index = client.get("/")
    assert index.status_code == 200
    assert "Mind &amp; Body Weekly" in index.text
    assert "broken.toml: cron: expected a crontab expression" in index.text
    page = client.get("/schedules/broken")
    assert page.status_code == 500
    assert "Configuration error" in page.text


def test_broken_settings_show_an_error_and_recover(client: TestClient, demo_project: Project):
    settings = demo_project.root / "newsletter.toml"
    good = settings.read_text()
    settings.write_text(good.replace("[site]", "[site]\nbogus = 1"))
    page = client.get("/")
    assert page.status_code == 500
    assert "site.bogus: unknown key" in page.text
    settings.write_text(good)
    assert client.get("/").status_code == 200


def test_changes_reports_a_new_version_after_an_edit(client: TestClient, demo_project: Project):
    first = client.get("/changes").json()["version"]
    assert client.get("/changes", params={"since": first}).json() == {"version": first, "changed": False}
    assert f'data-version="{first}"' in client.get("/").text
    template = demo_project.root / "templates/digest.txt.j2"
    template.write_text(template.read_text() + "\nEdited.\n")
    second = client.get("/changes", params={"since": first}).json()
    assert second["changed"]
    assert second["version"] != first
    demo_project.ingest(
        [str(write_article(demo_project.root, "new.txt", "New", "2026-11-22"))],
        NOW,
        category="Sleep & recovery",
    )
    assert client.get("/changes").json()["version"] != second["version"]


def test_a_bug_is_a_styled_500_without_a_traceback(app: Starlette, monkeypatch: pytest.MonkeyPatch):
    def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("newsletter.web.preview.schedule_rows", broken)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as crashing:
        page = crashing.get("/")
    assert page.status_code == 500
    assert "Something went wrong" in page.text
    assert "secret internals" not in page.text
    assert "Traceback" not in page.text


def test_preview_outside_a_project_is_a_user_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "preview", "--port", "0"])
    assert result.exit_code == 1
    assert "newsletter.toml: file not found" in result.stderr


@pytest.mark.slow
def test_preview_command_serves_and_stops_promptly(project_dir: Path):
    """The real command on a free port: it answers, and SIGINT/SIGTERM stop it within seconds."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli", "--project", str(project_dir), "preview", "--port", "0"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = _served_url(server)
            with urllib.request.urlopen(url + "/") as response:
                assert response.status == 200
                assert b"Mind &amp; Body Weekly" in response.read()
            started = time.monotonic()
            server.send_signal(stop)
            server.wait(timeout=5)
            assert time.monotonic() - started < 2.5
        finally:
            server.kill()
            server.wait()


def _served_url(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found[1]
        assert line or server.poll() is None, "preview exited before serving"
    raise AssertionError("preview did not start")


def test_issue_page_shows_the_quality_report(client: TestClient, demo_project: Project):
    """`newsletter check`'s findings on the built issue (issue 21): a link no reader can
    follow, written into the project's own template, is on the issue page."""
    template = demo_project.root / "templates/digest.mjml.j2"
    bad = '<mj-text><a href="javascript:alert(1)">Win</a></mj-text>'
    template.write_text(template.read_text().replace("</mj-column>", bad + "</mj-column>", 1))
    page = client.get("/schedules/weekly", params={"at": "2026-11-23T08:00"})
    assert page.status_code == 200
    report = re.search(r'id="quality">(.*?)</section>', page.text, re.S)
    assert report is not None
    assert "error: [links]" in report[1]
    assert "javascript:" in report[1]
