"""`[[sources]]`: polled by `fetch` and by `run` before each send, against a real HTTP
server on 127.0.0.1 and a real folder of Jekyll and Hugo posts; real SQLite, a real
SMTP server for the sends."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from newsletter import scaffold, scheduler
from newsletter.cli import main
from newsletter.core.errors import ConfigError
from newsletter.core.models import Article, SubscriberRow
from newsletter.core.periods import AheadTrigger, cron_trigger
from newsletter.delivery import due_sends
from newsletter.project import Project
from newsletter.sources import polling as sources
from newsletter.sources.ingest import Origin
from newsletter.storage import polls
from newsletter.storage.issues import Issues
from newsletter.storage.roster import Roster
from newsletter.storage.schema import articles
from tests.conftest import SMTPServer

ENV = {"NEWSLETTER_SECRET_KEY": "a-test-secret-of-enough-length"}
GRACE = timedelta(hours=6)
# The scaffold's weekly goes out on Mondays at 08:00 in London (UTC in winter).
MIDWEEK = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WEEK_1, WEEK_2 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC), datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--project", str(root), *args], env=env, catch_exceptions=False)


def item(title: str, published: str | None, guid: str, category: str = "") -> str:
    date = f"<pubDate>{published}</pubDate>" if published else ""
    tag = f"<category>{category}</category>" if category else ""
    return (
        f"<item><title>{title}</title><link>/news/{guid}</link><guid isPermaLink='false'>{guid}</guid>"
        f"{date}{tag}<description>{title}: what happened, told in a paragraph.</description></item>"
    )


def rss(*items: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>News</title>"
        f"<link>https://news.example.org/</link>{''.join(items)}</channel></rss>"
    ).encode()


@dataclass
class Feed:
    """What the server serves at /feed.xml now, and what it answered each request."""

    body: bytes = b""
    status: int = 200
    served: list[int] = field(default_factory=list)
    conditional: list[bool] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class Handler(BaseHTTPRequestHandler):
    feed = Feed()

    def do_GET(self) -> None:
        feed = Handler.feed
        feed.conditional.append("If-None-Match" in self.headers)
        if self.path == "/old-feed.xml":
            self.answer(301, b"", {"Location": "/feed.xml"})
        elif self.path != "/feed.xml":
            self.answer(404, b"")
        elif feed.status != 200:
            self.answer(feed.status, b"down")
        elif self.headers.get("If-None-Match") == feed.etag:
            self.answer(304, b"", {"ETag": feed.etag})
        else:
            self.answer(200, feed.body, {"ETag": feed.etag, "Content-Type": "application/rss+xml"})

    def answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        if self.path in ("/feed.xml", "/old-feed.xml"):
            Handler.feed.served.append(code)
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.feed = Feed()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def post(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


BODY = "\n\nA paragraph of the post, long enough to read as one, and then some more words.\n"


def blog_week_1(blog: Path) -> None:
    """Jekyll posts (YAML, dates from file names, categories lists), Hugo posts (TOML),
    and drafts of both kinds."""
    post(
        blog,
        "_posts/2026-11-18-fix-a-bike.md",
        "---\ntitle: Fix a bike\ncategories: [howto, bikes]\n---" + BODY,
    )
    post(
        blog,
        "content/posts/trail-guide.md",
        '+++\ntitle = "Trail guide"\ndate = 2026-11-20T09:00:00Z\ntags = ["HowTo"]\n+++' + BODY,
    )
    post(
        blog,
        "_posts/2026-11-19-secret.md",
        "---\ntitle: Not yet\ndraft: true\ncategories: [howto]\n---" + BODY,
    )
    post(
        blog,
        "content/posts/unpublished.md",
        '+++\ntitle = "Unpublished"\ndate = 2026-11-21\npublished = false\n+++' + BODY,
    )


def configure(root: Path, url: str) -> None:
    with (root / "newsletter.toml").open("a", encoding="utf-8") as f:
        f.write(
            f'\n[[sources]]\nname = "news"\nurl = "{url}"\ncategory = "News"\nevery = "1h"\n'
            '\n[[sources]]\nname = "blog"\npath = "blog"\ncategories = { howto = "Guides" }\n'
        )


@pytest.fixture
def root(tmp_path: Path, server: str) -> Path:
    project_root = tmp_path / "site"
    scaffold.init(project_root, name="Trail News", base_url="https://site.example")
    configure(project_root, f"{server}/feed.xml")
    return project_root


@pytest.fixture
def project(root: Path) -> Iterator[Project]:
    opened = Project(root, environ=ENV)
    Roster(opened.store).import_subscribers(
        [SubscriberRow("ann@example.org", "Ann")], WEEK_1 - timedelta(days=30)
    )
    yield opened
    opened.close()


def issue_titles(project: Project, end: datetime) -> set[str]:
    issue = Issues(project.store).issue("weekly", end)
    assert issue is not None, f"no issue for {end}"
    ids = set(Issues(project.store).issue_article_ids(issue.id))
    return {s.article.title for s in project.store.articles() if s.id in ids}


def test_run_keeps_two_sources_current_over_two_weeks(
    project: Project, root: Path, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="newsletter.scheduler")
    feed = Handler.feed
    feed.body = rss(
        item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"),
        item("Race results", "Fri, 20 Nov 2026 17:00:00 +0000", "n2", "Sport"),
        item("Archive page from long ago", None, "n0"),  # undated, in the first poll: backlog
        item("Last year's news", "Mon, 17 Nov 2025 10:00:00 +0000", "n-old"),
    )
    blog_week_1(root / "blog")

    # Week 1: the poll job ten minutes ahead of the send, then the send at its time.
    due_sends.refresh_sources(project, project.schedule("weekly"), WEEK_1, WEEK_1 - scheduler.POLL_AHEAD)
    [first] = due_sends.catch_up(project, WEEK_1 + timedelta(minutes=1), GRACE, smtp_server.url)
    assert first is not None and first.outcome == "sent"
    assert issue_titles(project, WEEK_1) == {"Bridge reopens", "Race results", "Fix a bike", "Trail guide"}

    # Midweek, a fetch finds the feed as it was: a 304, and the blog unchanged.
    fetched = sources.poll_all(project.store, project.settings, root, project.settings.sources, MIDWEEK)
    outcomes = {r.name: (r.status, r.message) for r in fetched}
    assert outcomes == {
        "news": ("not-modified", "not modified"),
        "blog": ("ok", "0 added, 0 updated, 2 unchanged"),
    }

    # Week 2: new posts on both; the undated one is news now (not the first poll).
    feed.body = rss(
        item("Market day", "Tue, 24 Nov 2026 09:00:00 +0000", "n3"),
        item("A notice with no date", None, "n4"),
        item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"),
        item("Archive page from long ago", None, "n0"),
    )
    post(
        root / "blog",
        "_posts/2026-11-26-winter-tyres.md",
        "---\ntitle: Winter tyres\ncategories: howto\n---" + BODY,
    )
    due_sends.refresh_sources(project, project.schedule("weekly"), WEEK_2, WEEK_2 - scheduler.POLL_AHEAD)
    [second] = due_sends.catch_up(project, WEEK_2 + timedelta(minutes=1), GRACE, smtp_server.url)
    assert second is not None and second.outcome == "sent"
    assert issue_titles(project, WEEK_2) == {"Market day", "A notice with no date", "Winter tyres"}

    assert feed.served == [200, 304, 200]  # the send-time polls were within `every`: skipped
    assert feed.conditional == [False, True, True]
    assert "source news: ok: 2 added, 0 updated, 2 unchanged" in caplog.text
    with project.store.engine.connect() as conn:
        titles = set(conn.scalars(sa.select(articles.c.title)))
        categories = set(conn.scalars(sa.select(articles.c.category).where(articles.c.origin == "blog")))
    assert not titles & {"Not yet", "Unpublished"}  # drafts
    assert categories == {"Guides"}  # howto and HowTo: the map, whatever the case


def test_a_failing_source_is_reported_and_the_issue_still_goes_out(
    project: Project, root: Path, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="newsletter.scheduler")
    Handler.feed.body = rss(item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"))
    blog_week_1(root / "blog")
    assert invoke(root, "fetch", "news", env=ENV).exit_code == 0
    Handler.feed.status = 503

    [summary] = due_sends.catch_up(project, WEEK_1 + timedelta(hours=2), GRACE, smtp_server.url)

    assert summary is not None and summary.outcome == "sent"
    assert issue_titles(project, WEEK_1) == {"Bridge reopens", "Fix a bike", "Trail guide"}
    assert "source news: failed:" in caplog.text and "the issue goes out with what is stored" in caplog.text
    state = polls.states(project.store)["news"]
    assert (state.status, state.etag) == ("failed", Handler.feed.etag)  # validators kept
    listed = invoke(root, "sources", env=ENV)
    assert "failed" in listed.stdout and "503" in listed.stdout


def test_fetch_names_the_failed_source_and_exits_1(root: Path):
    Handler.feed.status = 500
    result = invoke(root, "fetch", env=ENV)
    assert result.exit_code == 1
    assert "news: failed:" in result.stdout
    assert (
        "Error: 2 of 2 sources not read in full (news failed, blog failed); what was stored is kept"
        in result.stderr
    )


def test_fetch_exits_1_when_a_source_is_read_only_in_part(root: Path):
    blog_week_1(root / "blog")
    post(root / "blog", "_posts/2026-11-20-broken.md", "---\ntitle: [unclosed\n---" + BODY)
    Handler.feed.body = rss(item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"))
    result = invoke(root, "fetch", env=ENV)
    assert "news: ok:" in result.stdout and "blog: partial: 2 added" in result.stdout
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert errors[0].startswith("Error: 1 of 2 sources not read in full (blog partial); ")
    assert errors[1].startswith("Hint: ") and len(errors) == 2
    assert invoke(root, "fetch", "news", env=ENV).exit_code == 0  # all read: 0


def test_fetch_of_an_unknown_source_lists_the_known_ones(root: Path):
    result = invoke(root, "fetch", "newz", env=ENV)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no source named newz; known: news, blog")


def test_a_permanent_redirect_moves_the_stored_location_with_a_warning(root: Path, server: str):
    toml = root / "newsletter.toml"
    toml.write_text(toml.read_text().replace("/feed.xml", "/old-feed.xml"))
    Handler.feed.body = rss(item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"))
    first = invoke(root, "fetch", "news", env=ENV)
    assert first.exit_code == 0
    assert f"moved permanently to {server}/feed.xml; polling the new address" in first.stderr
    second = invoke(root, "fetch", "news", env=ENV)
    assert "news: not-modified" in second.stdout
    assert Handler.feed.served == [301, 200, 304]  # the second poll went straight to the new place
    listed = invoke(root, "sources", "--json", env=ENV)
    assert json.loads(listed.stdout)[0]["location"] == f"{server}/feed.xml"


def test_a_vanished_folder_is_reported_and_its_articles_kept(root: Path):
    blog_week_1(root / "blog")
    assert invoke(root, "fetch", "blog", env=ENV).exit_code == 0
    shutil.rmtree(root / "blog")
    result = invoke(root, "fetch", "blog", env=ENV)
    assert result.exit_code == 1
    assert "no such file or folder" in result.stdout
    listed = json.loads(invoke(root, "sources", "--json", env=ENV).stdout)
    assert [(s["name"], s["status"], s["articles"]) for s in listed] == [
        ("news", "new", 0),
        ("blog", "failed", 2),
    ]


def test_the_sources_feeding_a_schedule(project: Project, root: Path):
    (root / "schedules" / "sport.toml").write_text(
        'title = "Sport"\ncron = "0 8 * * fri"\ncategories = ["Sport"]\n', encoding="utf-8"
    )
    Handler.feed.body = rss(item("Bridge reopens", "Wed, 18 Nov 2026 10:00:00 +0000", "n1"))
    blog_week_1(root / "blog")
    every = [s.name for s in project.settings.sources]

    def feeding(*categories: str) -> list[str]:
        return [s.name for s in sources.feeding(project.store, project.settings, categories)]

    assert feeding("Sport") == every  # never read: who knows
    sources.poll_all(project.store, project.settings, root, project.settings.sources, WEEK_1)
    assert feeding("Sport") == []
    assert feeding("*") == every
    assert feeding("News") == ["news"]  # its default category
    assert feeding("Guides") == ["blog"]  # its map


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('url = "https://a.example/f"\npath = "x"', "sources[1]: expected exactly one of url"),
        ('name = "x"', "sources[1]: expected exactly one of url"),
        (
            'url = "ftp://a.example/f"',
            "sources[1].url: expected a feed URL starting with http:// or https://",
        ),
        ('path = "posts"\nname = "two words"', "sources[1].name: expected a name of letters"),
        ('path = "posts"\nevery = "soon"', "sources[1].every: expected a duration such as"),
        ('path = "posts"\npoll = "1h"', "sources[1].poll: unknown key"),
    ],
)
def test_a_bad_sources_table_is_one_error_naming_it(tmp_path: Path, table: str, expected: str):
    scaffold.init(tmp_path, name="Site", base_url="https://site.example")
    with (tmp_path / "newsletter.toml").open("a") as f:
        f.write(f"\n[[sources]]\n{table}\n")
    with pytest.raises(ConfigError) as raised:
        Project(tmp_path, environ={})
    assert expected in str(raised.value)


def test_two_sources_with_one_name_are_refused(tmp_path: Path):
    scaffold.init(tmp_path, name="Site", base_url="https://site.example")
    with (tmp_path / "newsletter.toml").open("a") as f:
        f.write('\n[[sources]]\npath = "a/posts"\n\n[[sources]]\npath = "b/posts"\n')
    with pytest.raises(ConfigError, match="posts named twice"):
        Project(tmp_path, environ={})


def test_the_poll_job_fires_ahead_of_each_send_time():
    trigger = cron_trigger("0 8 * * mon", "Europe/London")
    ahead = AheadTrigger(trigger, scheduler.POLL_AHEAD)
    first = ahead.get_next_fire_time(None, WEEK_1 - timedelta(hours=1))
    assert first == WEEK_1 - scheduler.POLL_AHEAD
    assert first is not None
    assert ahead.get_next_fire_time(first, first + timedelta(seconds=1)) == WEEK_2 - scheduler.POLL_AHEAD
    # Between the poll and the send, the next poll is the next week's.
    assert ahead.get_next_fire_time(None, WEEK_1 - timedelta(minutes=5)) == WEEK_2 - scheduler.POLL_AHEAD


def test_a_one_off_ingest_keeps_its_undated_entries_out_of_the_issues(tmp_path: Path):
    root = tmp_path / "site"
    scaffold.init(root, name="Site", base_url="https://site.example")
    feed_file = tmp_path / "feed.xml"
    feed_file.write_bytes(
        rss(item("Undated page", None, "u1"), item("Dated", "Wed, 18 Nov 2026 10:00:00 +0000", "d1", "News"))
    )
    with closing(Project(root, environ={})) as project:
        project.ingest([str(feed_file)], WEEK_1 - timedelta(days=2), category="News")
        digest = project.digest(project.schedule("weekly"), WEEK_1)
        stored = {s.article.title: s.article.backlog for s in project.store.articles()}
        assert [a.title for a in digest.articles] == ["Dated"]
        assert stored == {"Undated page": True, "Dated": False}
        project.ingest([str(feed_file)], WEEK_1 + timedelta(days=2), category="News")  # read again
        assert {s.article.title: s.article.backlog for s in project.store.articles()} == stored


@pytest.mark.parametrize(
    ("category", "tags", "expected"),
    [
        ("tools", (), "Tools"),
        ("TOOLS", (), "Tools"),
        ("dev-tools", (), "Tools"),
        ("Gardening", (), "Gardening"),  # not in the map: as it is
        ("", ("misc", "Dev-Tools"), "Tools"),  # no category: the first tag the map names
        ("", ("misc",), ""),  # left to the default
    ],
)
def test_a_source_category_map(category: str, tags: tuple[str, ...], expected: str):
    origin = Origin("blog", "News", {"tools": "Tools", "dev-tools": "Tools"}, first_read=False)
    article = Article("T", WEEK_1, "s", category=category, tags=tags)
    assert origin.apply(article).category == expected
