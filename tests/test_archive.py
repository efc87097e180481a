"""The public archive (`/issues/`) and its Atom feeds, over a real SQLite file and real
sends to a `file:` transport, through Starlette's TestClient; feeds read back with
feedparser."""

from __future__ import annotations

import html as htmllib
import warnings
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.roster import Roster
from newsletter.web.archive import clean
from newsletter.web.public import create_app
from tests.conftest import NOW, write_article

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789"}
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
WEEK = scaffold.DEMO_AT
ATOM = "{http://www.w3.org/2005/Atom}"
EVIL = '<script>alert(1)</script> & "quotes" \x07bell'


def send_week(project: Project, at: object, tmp_path: Path) -> str:
    summary = send_schedule(project, "weekly", at, f"file:{tmp_path / 'outbox'}", FAST)  # type: ignore[arg-type]
    assert summary.outcome == "sent", summary
    return summary.outcome


@pytest.fixture
def archive(demo_project: Project, tmp_path: Path) -> Iterator[Project]:
    """Two sent weekly issues; the first reader (by address) wants one category only, so
    the issue row's subject is that variant's; a third week built but never sent."""
    project = Project(demo_project.root, environ=ENV)
    Roster(project.store).import_subscribers(
        [
            SubscriberRow("aaa@example.org", "Aaa", ("Movement & fitness",)),
            SubscriberRow("bob@example.org", "Bob"),
        ],
        NOW,
    )
    send_week(project, WEEK, tmp_path)
    folder = tmp_path / "next"
    write_article(folder, "a.txt", EVIL, "2026-11-25")
    project.ingest([str(folder)], WEEK + timedelta(days=7), category="Sleep & recovery")
    send_week(project, WEEK + timedelta(days=7), tmp_path)
    project.build("weekly", WEEK + timedelta(days=14), NOW, out=project.root / "issues")
    yield project
    project.close()


@pytest.fixture
def client(archive: Project) -> Iterator[TestClient]:
    with TestClient(create_app(archive.root, ENV, clock=lambda: NOW)) as test_client:
        yield test_client


def test_index_lists_sent_issues_newest_first(client: TestClient, archive: Project):
    page = client.get("/issues/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    newer, older = html.index('href="weekly-2026-11-30.html"'), html.index('href="weekly-2026-11-23.html"')
    assert newer < older
    assert "weekly-2026-12-07" not in html  # built, never sent
    assert "Mind &amp; Body Weekly" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for stem in ("weekly-2026-11-23", "weekly-2026-11-30"):
        assert client.get(f"/issues/{stem}.html").status_code == 200


def test_the_archive_subject_is_the_full_digests_not_a_variants(client: TestClient, archive: Project):
    [_, first] = [r for r in Issues(archive.store).issues("weekly") if r.status == "sent"]
    with (archive.root / "issues" / "weekly-2026-11-23.eml").open("rb") as f:
        full_subject = str(BytesHeaderParser(policy=policy.default).parse(f)["subject"])
    assert first.subject != full_subject  # the row holds the one-category variant's subject
    assert feedparser.parse(client.get("/issues/weekly/feed.atom").content).entries[-1].title == full_subject
    index = client.get("/issues/").text
    # Listed under the schedule's heading, without its title in front.
    assert f">{htmllib.escape(full_subject.split(': ', 1)[1], quote=False)}</a>" in index
    assert htmllib.escape(first.subject.split(": ", 1)[1], quote=False) not in index


def test_issues_without_slash_redirects_relatively(client: TestClient):
    response = client.get("/issues", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "issues/"


@pytest.mark.parametrize("path", ["/issues/feed.atom", "/issues/weekly/feed.atom"])
def test_feeds_are_valid_atom_with_stable_ids(client: TestClient, path: str):
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(first.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    base = "https://example.org/newsletter"
    assert parsed.feed.id == f"{base}{path}"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": f"{base}{path}", "alternate": f"{base}/issues/"}
    assert parsed.feed.author == "Mind & Body"
    assert parsed.feed.updated_parsed is not None
    assert [e.id for e in parsed.entries] == [
        f"{base}/issues/weekly-2026-11-30.html",
        f"{base}/issues/weekly-2026-11-23.html",
    ]
    for entry in parsed.entries:
        assert entry.link == entry.id
        assert entry.title
        assert entry.updated_parsed is not None and entry.published_parsed is not None
    assert parsed.entries[0].title == f"Mind & Body Weekly: {clean(EVIL)}"  # text, as typed
    again = client.get(path, headers={"host": "elsewhere.test"})
    assert [e.id for e in feedparser.parse(again.content).entries] == [e.id for e in parsed.entries]
    assert feedparser.parse(again.content).feed.id == parsed.feed.id


def test_feed_xml_follows_rfc_4287(client: TestClient):
    root = ET.fromstring(client.get("/issues/feed.atom").content)
    assert root.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated", "author"):
        assert len(root.findall(f"{ATOM}{tag}")) == 1, tag
    for entry in root.findall(f"{ATOM}entry"):
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{tag}")) == 1, tag
        [alternate] = [link for link in entry.findall(f"{ATOM}link") if link.get("rel") == "alternate"]
        assert alternate.get("href", "").startswith("https://example.org/newsletter/issues/")


def test_untrusted_titles_are_escaped_in_the_feed(client: TestClient):
    body = client.get("/issues/feed.atom").content
    assert b"<script>" not in body
    assert b"\x07" not in body
    assert b'&lt;script&gt;alert(1)&lt;/script&gt; &amp; "quotes"' in body


def test_unknown_schedule_feed_is_404(client: TestClient):
    assert client.get("/issues/nope/feed.atom").status_code == 404
    assert client.get("/issues/..%2Fweekly/feed.atom").status_code == 404


def test_an_empty_archive(project_dir: Path):
    with TestClient(create_app(project_dir, ENV, clock=lambda: NOW)) as empty:
        page = empty.get("/issues/")
        assert page.status_code == 200
        assert "No issue has been sent yet" in page.text
        parsed = feedparser.parse(empty.get("/issues/feed.atom").content)
        assert parsed.bozo == 0
        assert parsed.entries == []
        assert empty.get("/issues/weekly/feed.atom").status_code == 200


def test_clean_drops_what_xml_cannot_hold():
    assert clean("a\x00b\x1f c\n d\ufffe") == "ab c d"
